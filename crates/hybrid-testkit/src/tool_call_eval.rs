//! A tool-call eval of a real model: twenty operations requests, each asked
//! with the executor's own instructions and the platform's own built-in tools
//! (their real names, descriptions and JSON schemas), scored on whether the
//! model calls a tool, whether the call is well formed, and whether it is a
//! tool that can do the job.
//!
//! | score | the call counts when |
//! | --- | --- |
//! | `called` | the response holds at least one tool call |
//! | `valid` | every call names an offered tool, and its arguments are a JSON object the tool's schema accepts (required fields present, no unknown field, each of the declared type) |
//! | `fit` | valid, and the first call's tool is one of the case's expected tools |
//!
//! The live suites assert on `valid` over both protocols; the eval binary
//! (`hybrid-tool-call-eval`) prints the table for any server.

use std::time::{Duration, Instant};

use hybrid_llm::{ChatModel, ChatRequest, Message, ToolCall, ToolChoice, ToolDefinition};
use hybrid_tools::{ToolRegistry, ToolSpec, ToolsConfig};
use serde_json::Value;

/// One request of the eval, and the tools that could serve it.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// What the user asks (the demo workspace's files: `app.yaml`, `logs/app.log`).
    pub prompt: &'static str,
    /// Tools that can do it.
    pub expect: &'static [&'static str],
}

/// The twenty operations requests: list files, read a log's tail, find a port
/// in a config, check a process, and their neighbours.
pub const CASES: [Case; 20] = [
    Case {
        prompt: "List the files in the current directory.",
        expect: &["bash", "glob"],
    },
    Case {
        prompt: "Show me the last 20 lines of logs/app.log.",
        expect: &["bash", "read_file"],
    },
    Case {
        prompt: "What port does app.yaml configure? Read the file to find out.",
        expect: &["read_file", "bash", "grep"],
    },
    Case {
        prompt: "Check whether a process named nginx is running.",
        expect: &["bash"],
    },
    Case {
        prompt: "Read the file app.yaml.",
        expect: &["read_file", "bash"],
    },
    Case {
        prompt: "How much free disk space is left on this machine?",
        expect: &["bash"],
    },
    Case {
        prompt: "Find every line containing ERROR in logs/app.log.",
        expect: &["grep", "bash", "read_file"],
    },
    Case {
        prompt: "Show the current system uptime and load average.",
        expect: &["bash"],
    },
    Case {
        prompt: "Find all YAML files under this directory.",
        expect: &["glob", "bash"],
    },
    Case {
        prompt: "Print the first 5 lines of /etc/os-release.",
        expect: &["bash", "read_file"],
    },
    Case {
        prompt: "Which user is this shell running as?",
        expect: &["bash"],
    },
    Case {
        prompt: "Count the lines in logs/app.log.",
        expect: &["bash", "read_file"],
    },
    Case {
        prompt: "Show how much memory is free.",
        expect: &["bash"],
    },
    Case {
        prompt: "List the ten processes using the most memory.",
        expect: &["bash"],
    },
    Case {
        prompt: "Search app.yaml for the word replicas.",
        expect: &["grep", "bash", "read_file"],
    },
    Case {
        prompt: "Show the size of the logs directory.",
        expect: &["bash"],
    },
    Case {
        prompt: "Check which program is listening on port 8080.",
        expect: &["bash"],
    },
    Case {
        prompt: "Read /etc/hostname and tell me the machine's name.",
        expect: &["read_file", "bash"],
    },
    Case {
        prompt: "Show the kernel version of this machine.",
        expect: &["bash"],
    },
    Case {
        prompt: "List the files in the logs directory with their sizes.",
        expect: &["bash", "glob"],
    },
];

/// The executor's default instructions (hybrid-agents' preset), so the eval
/// asks as the platform does.
pub fn executor_instructions() -> &'static str {
    hybrid_agents::presets::instructions_for("executor")
}

/// How one case went.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Index into [`CASES`].
    pub case: usize,
    /// At least one tool call.
    pub called: bool,
    /// Every call well formed (see the module docs).
    pub valid: bool,
    /// Valid, and the first call is an expected tool.
    pub fit: bool,
    /// The first call, or the text, or the error, for the report.
    pub detail: String,
    /// The request failed (the server refused it, or the connection broke).
    pub failed: bool,
    /// Tokens the model wrote.
    pub output_tokens: u64,
    /// How long the call took.
    pub took: Duration,
}

/// The eval of one model over one protocol.
#[derive(Debug, Clone)]
pub struct Report {
    /// What was evaluated (`openai`, `anthropic` …).
    pub label: String,
    /// Every case's outcome, in order.
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// Cases with a tool call.
    pub fn called(&self) -> usize {
        self.outcomes.iter().filter(|o| o.called).count()
    }

    /// Requests that failed.
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.failed).count()
    }

    /// Cases whose calls were all well formed.
    pub fn valid(&self) -> usize {
        self.outcomes.iter().filter(|o| o.valid).count()
    }

    /// Cases whose first call was valid and fit for the job.
    pub fn fit(&self) -> usize {
        self.outcomes.iter().filter(|o| o.fit).count()
    }

    /// `valid` as a fraction of all cases.
    pub fn valid_fraction(&self) -> f64 {
        ratio(self.valid(), self.outcomes.len())
    }

    /// Output tokens per second over the whole eval.
    pub fn tokens_per_second(&self) -> f64 {
        let tokens: u64 = self.outcomes.iter().map(|o| o.output_tokens).sum();
        let secs: f64 = self.outcomes.iter().map(|o| o.took.as_secs_f64()).sum();
        if secs > 0.0 {
            u64_f64(tokens) / secs
        } else {
            0.0
        }
    }
}

#[allow(clippy::cast_precision_loss)]
fn u64_f64(n: u64) -> f64 {
    n as f64
}

fn ratio(n: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        u64_f64(n as u64) / u64_f64(of as u64)
    }
}

/// The tools the executor is offered by default: the built-in registry's.
pub fn executor_tools() -> Vec<ToolSpec> {
    ToolRegistry::builtin(&ToolsConfig::default()).specs()
}

/// Models labelled by the protocol they speak (`openai`, `anthropic`).
pub type Labelled = Vec<(&'static str, Box<dyn ChatModel>)>;

/// Both clients on the live server of the test suites (`HYBRID_LIVE_OPENAI_BASE_URL`,
/// `HYBRID_LIVE_ANTHROPIC_BASE_URL`, `HYBRID_LIVE_MODEL`, which `scripts/test.sh`
/// sets), labelled by protocol; `None` when they are not set, which under
/// `CI=true` is a failure.
///
/// # Panics
///
/// Under `CI=true` without the variables, or when a client cannot be built:
/// this is for tests.
#[allow(clippy::panic, clippy::expect_used)]
pub fn live_models() -> Option<Labelled> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(openai), Some(anthropic), Some(model)) = (
        var("HYBRID_LIVE_OPENAI_BASE_URL"),
        var("HYBRID_LIVE_ANTHROPIC_BASE_URL"),
        var("HYBRID_LIVE_MODEL"),
    ) else {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !ci,
            "CI=true but HYBRID_LIVE_* is not set: scripts/test.sh starts the local model"
        );
        return None;
    };
    Some(clients(&openai, &anthropic, &model).expect("clients for the live server"))
}

/// Both clients on a local server that needs no key (llama-server), labelled
/// by protocol: `openai` on Chat Completions at `openai`, `anthropic` on
/// Messages at `anthropic`.
pub fn clients(
    openai: &str,
    anthropic: &str,
    model: &str,
) -> Result<Labelled, hybrid_llm::LlmError> {
    let key = "sk-local-no-key";
    let openai = hybrid_llm::OpenAiClient::new(
        hybrid_llm::OpenAiConfig::new(key, model)
            .with_provider_name("llama.cpp")
            .with_base_url(openai),
    )?;
    let anthropic = hybrid_llm::AnthropicClient::new(
        hybrid_llm::AnthropicConfig::new(key, model).with_base_url(anthropic),
    )?;
    Ok(vec![
        ("openai", Box::new(openai)),
        ("anthropic", Box::new(anthropic)),
    ])
}

/// Runs every case against `model` (temperature 0, at most `max_tokens`
/// output tokens each), one at a time.
pub async fn evaluate(label: &str, model: &dyn ChatModel, max_tokens: u32) -> Report {
    let specs = executor_tools();
    let tools: Vec<ToolDefinition> = specs
        .iter()
        .map(|s| ToolDefinition {
            name: s.name.clone(),
            description: s.description.clone(),
            parameters: s.parameters.clone(),
        })
        .collect();
    let mut outcomes = Vec::with_capacity(CASES.len());
    for (index, case) in CASES.iter().enumerate() {
        let mut request = ChatRequest::new(vec![
            Message::system(executor_instructions()),
            Message::user(case.prompt),
        ]);
        request.tools = tools.clone();
        request.tool_choice = ToolChoice::Auto;
        request.max_tokens = Some(max_tokens);
        request.temperature = Some(0.0);
        let started = Instant::now();
        let response = model.complete(request).await;
        let took = started.elapsed();
        let outcome = match response {
            Ok(r) => score(
                index,
                case,
                &specs,
                &r.tool_calls,
                &r.text,
                r.usage.output_tokens,
                took,
            ),
            Err(e) => Outcome {
                case: index,
                called: false,
                valid: false,
                fit: false,
                detail: format!("error: {e}"),
                failed: true,
                output_tokens: 0,
                took,
            },
        };
        outcomes.push(outcome);
    }
    Report {
        label: label.to_owned(),
        outcomes,
    }
}

/// Scores one response's calls.
fn score(
    case: usize,
    expected: &Case,
    specs: &[ToolSpec],
    calls: &[ToolCall],
    text: &str,
    output_tokens: u64,
    took: Duration,
) -> Outcome {
    let problems: Vec<String> = calls
        .iter()
        .filter_map(|call| match specs.iter().find(|s| s.name == call.name) {
            None => Some(format!("unknown tool {:?}", call.name)),
            Some(spec) => check_arguments(&spec.parameters, &call.arguments)
                .err()
                .map(|why| format!("{}: {why}", call.name)),
        })
        .collect();
    let called = !calls.is_empty();
    let valid = called && problems.is_empty();
    let fit = valid
        && calls
            .first()
            .is_some_and(|c| expected.expect.contains(&c.name.as_str()));
    let detail = match (calls.first(), problems.first()) {
        (_, Some(problem)) => problem.clone(),
        (Some(call), None) => format!("{} {}", call.name, call.arguments),
        (None, None) => format!(
            "no call; text: {}",
            text.chars().take(80).collect::<String>()
        ),
    };
    Outcome {
        case,
        called,
        valid,
        fit,
        detail,
        failed: false,
        output_tokens,
        took,
    }
}

/// Whether `arguments` is an object `schema` (a tool's parameters, as
/// schemars writes them) accepts: required properties present, none it does
/// not declare, each of its declared type.
pub fn check_arguments(schema: &Value, arguments: &Value) -> Result<(), String> {
    let Value::Object(args) = arguments else {
        return Err(format!("arguments are not a JSON object: {arguments}"));
    };
    let properties = schema.get("properties").and_then(Value::as_object);
    let required = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect::<Vec<_>>())
        .unwrap_or_default();
    if let Some(missing) = required.iter().find(|name| !args.contains_key(**name)) {
        return Err(format!("required argument {missing:?} missing"));
    }
    for (name, value) in args {
        let Some(declared) = properties.and_then(|p| p.get(name)) else {
            return Err(format!("argument {name:?} is not in the schema"));
        };
        if !type_accepts(declared.get("type"), value) {
            return Err(format!(
                "argument {name:?} is {value}, not of type {}",
                declared.get("type").unwrap_or(&Value::Null)
            ));
        }
    }
    Ok(())
}

/// Whether a JSON Schema `type` (a name or a list of names; none: any) accepts `value`.
fn type_accepts(declared: Option<&Value>, value: &Value) -> bool {
    let accepts = |name: &str| match name {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "null" => value.is_null(),
        _ => false,
    };
    match declared {
        None => true,
        Some(Value::String(name)) => accepts(name),
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).any(accepts),
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn spec(name: &str) -> ToolSpec {
        executor_tools()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap()
    }

    #[test]
    fn the_real_schemas_accept_good_calls_and_refuse_bad_ones() {
        let bash = spec("bash").parameters;
        assert!(check_arguments(&bash, &json!({"command": "ls -la"})).is_ok());
        assert!(check_arguments(&bash, &json!({"command": "ls", "timeout_secs": 5})).is_ok());
        let missing = check_arguments(&bash, &json!({})).unwrap_err();
        assert!(missing.contains("\"command\" missing"), "{missing}");
        let unknown = check_arguments(&bash, &json!({"command": "ls", "cwd": "/"})).unwrap_err();
        assert!(
            unknown.contains("\"cwd\" is not in the schema"),
            "{unknown}"
        );
        let typed = check_arguments(&bash, &json!({"command": ["ls"]})).unwrap_err();
        assert!(typed.contains("not of type"), "{typed}");
        let raw = check_arguments(&bash, &json!("ls -la")).unwrap_err();
        assert!(raw.contains("not a JSON object"), "{raw}");
        let read = spec("read_file").parameters;
        assert!(check_arguments(&read, &json!({"path": "app.yaml"})).is_ok());
        assert!(check_arguments(&read, &json!({"file": "app.yaml"})).is_err());
    }

    #[test]
    fn scores_count_calls_validity_and_fit() {
        let specs = executor_tools();
        let call = |name: &str, arguments: Value| ToolCall {
            id: "call_1".into(),
            name: name.into(),
            arguments,
        };
        let case = &CASES[3]; // a process check: bash only
        let took = Duration::from_millis(1);
        let good = score(
            3,
            case,
            &specs,
            &[call("bash", json!({"command": "pgrep nginx"}))],
            "",
            9,
            took,
        );
        assert!(good.called && good.valid && good.fit, "{good:?}");
        let unfit = score(
            3,
            case,
            &specs,
            &[call("read_file", json!({"path": "/proc"}))],
            "",
            9,
            took,
        );
        assert!(unfit.valid && !unfit.fit, "{unfit:?}");
        let invented = score(
            3,
            case,
            &specs,
            &[call("shell", json!({"cmd": "ps"}))],
            "",
            9,
            took,
        );
        assert!(invented.called && !invented.valid, "{invented:?}");
        let none = score(3, case, &specs, &[], "I would run ps.", 9, took);
        assert!(!none.called && !none.valid && none.detail.contains("I would run ps."));
        let report = Report {
            label: "t".into(),
            outcomes: vec![good, unfit, invented, none],
        };
        assert_eq!((report.called(), report.valid(), report.fit()), (3, 2, 1));
        assert!((report.valid_fraction() - 0.5).abs() < 1e-9);
    }

    #[test]
    fn twenty_cases_each_expecting_offered_tools() {
        let names: Vec<String> = executor_tools().into_iter().map(|s| s.name).collect();
        assert_eq!(CASES.len(), 20);
        for case in CASES {
            assert!(!case.expect.is_empty(), "{}", case.prompt);
            for tool in case.expect {
                assert!(names.iter().any(|n| n == tool), "{tool} is not offered");
            }
        }
        assert!(executor_instructions().starts_with("You are an executor"));
    }
}
