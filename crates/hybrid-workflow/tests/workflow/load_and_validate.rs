//! Loading and validation: the built-ins, every bad-input class with its exact
//! one-line message and line, defaults, order, templates, inputs, catalog.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hybrid_workflow::{
    BUILTINS, Catalog, StageKind, StageOutcome, ValidateOptions, Verdict, WorkflowSource,
    build_context, eval_condition, load_str, render, with_attempt,
};
use serde_json::{Map, json};

fn err(yaml: &str) -> String {
    match load_str("x.yaml", yaml, &ValidateOptions::default()) {
        Ok(w) => panic!("expected an error, got workflow {}", w.name()),
        Err(e) => e.to_string(),
    }
}

fn ok(yaml: &str) -> hybrid_workflow::Workflow {
    load_str("x.yaml", yaml, &ValidateOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_builtin_loads_and_validates() {
    for b in BUILTINS {
        let wf = b
            .load(&ValidateOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(wf.name(), b.name);
        assert_eq!(*wf.source(), WorkflowSource::Builtin);
        assert!(!wf.description().is_empty());
    }
}

#[test]
fn plan_execute_verify_has_exactly_the_three_stages() {
    let wf = hybrid_workflow::builtin("plan-execute-verify")
        .unwrap()
        .load(&ValidateOptions::default())
        .unwrap();
    let ids: Vec<&str> = wf.stages().iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["planning", "execution", "verification"]);
    let agents: Vec<(String, Option<String>)> = wf
        .stages()
        .iter()
        .map(|s| match &s.kind {
            StageKind::Agent(a) => (a.agent.clone(), a.platform.clone()),
            other => panic!("{}", other.name()),
        })
        .collect();
    assert_eq!(
        agents,
        [
            ("coordinator".into(), Some("openai".into())),
            ("executor".into(), Some("claude".into())),
            ("validator".into(), Some("openai".into())),
        ]
    );
    let StageKind::Agent(v) = &wf.stages()[2].kind else {
        panic!()
    };
    assert_eq!(v.output, hybrid_workflow::OutputKind::Verdict);
}

#[test]
fn incident_response_diagnoses_in_parallel() {
    let wf = hybrid_workflow::builtin("incident-response")
        .unwrap()
        .load(&ValidateOptions::default())
        .unwrap();
    let waves = wf.waves();
    assert_eq!(
        waves[0].iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["assess"]
    );
    let second: Vec<&str> = waves[1].iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        second,
        [
            "diag_processes",
            "diag_memory",
            "diag_disk",
            "diag_logs",
            "diag_health",
            "diag_service"
        ]
    );
    assert!(matches!(
        wf.stage("approve_fix").unwrap().kind,
        StageKind::Approval(_)
    ));
    assert!(matches!(
        wf.stage("apply_fix").unwrap().kind,
        StageKind::Tool(_)
    ));
    assert!(matches!(
        wf.stage("heal_check").unwrap().kind,
        StageKind::Loop(_)
    ));
    let StageKind::Tool(t) = &wf.stage("notify").unwrap().kind else {
        panic!()
    };
    assert_eq!(t.name, "notify");
    let missing = wf.resolve_inputs(&Map::new()).unwrap_err().to_string();
    assert_eq!(
        missing,
        "workflow `incident-response`: input `log_file` is required and missing (pass --context log_file=VALUE)"
    );
}

#[test]
fn code_review_deploy_inputs_and_guardrails() {
    let wf = hybrid_workflow::builtin("code-review-deploy")
        .unwrap()
        .load(&ValidateOptions::default())
        .unwrap();
    let mut ctx = Map::new();
    for k in [
        "repo",
        "branch",
        "test_command",
        "lint_command",
        "security_command",
        "coverage_command",
        "deploy_command",
        "health_command",
    ] {
        ctx.insert(k.into(), json!(format!("<{k}>")));
    }
    ctx.insert("branch".into(), json!("feature/x"));
    let inputs = wf.resolve_inputs(&ctx).unwrap();
    assert_eq!(inputs["base"], "main");
    assert_eq!(inputs["coverage_threshold"], 80);
    assert_eq!(inputs["merge_command"], "git merge --no-ff feature/x");

    let StageKind::Agent(analysis) = &wf.stage("analysis").unwrap().kind else {
        panic!()
    };
    assert!(analysis.cache.is_some());
    let StageKind::Check(rules) = &wf.stage("decide").unwrap().kind else {
        panic!()
    };
    let run = |cmd: &str, code: i32, out: &str| {
        let mut o = StageOutcome::completed(out);
        o.ok = code == 0;
        o.commands = vec![hybrid_workflow::CommandOutcome {
            command: cmd.into(),
            exit_code: code,
            output: out.into(),
        }];
        o.to_value()
    };
    let mut stages = Map::new();
    stages.insert(
        "test".into(),
        run("t", 1, "test tests::parses_dates ... FAILED"),
    );
    stages.insert("coverage".into(), run("c", 0, "Reading...\n72.5\n"));
    stages.insert(
        "security".into(),
        run("s", 0, "1 finding: Critical: SQL injection"),
    );
    stages.insert("lint".into(), run("l", 0, ""));
    let ctx = wf.context(&json!({}), &inputs, &stages);
    let outcomes: Vec<_> = rules.iter().map(|r| r.evaluate(&ctx).unwrap()).collect();
    assert!(outcomes.iter().all(|o| !o.passed), "{outcomes:?}");
    assert!(
        outcomes[0]
            .message
            .as_ref()
            .unwrap()
            .contains("tests::parses_dates")
    );
    assert_eq!(
        outcomes[1].message.as_deref().unwrap(),
        "coverage 72.5% is below the threshold of 80% (coverage_command must print a bare number on its last line)"
    );
    stages.insert("test".into(), run("t", 0, "ok"));
    stages.insert("coverage".into(), run("c", 0, "91\n"));
    stages.insert("security".into(), run("s", 0, "no findings"));
    let ctx = wf.context(&json!({}), &inputs, &stages);
    assert!(rules.iter().all(|r| r.evaluate(&ctx).unwrap().passed));
}

// ---- bad input: one line each, with file, line and key -----------------

#[test]
fn unknown_key() {
    let yaml = "\
name: deploy
stages:
  - id: a
    agent: coordinator
    prompt: hi
  - id: b
    approval:
      message: ok?
      timout: 15m
";
    assert_eq!(
        err(yaml),
        "x.yaml:9: stages[1].approval.timout: unknown key (expected one of: message, timeout, on_reject)"
    );
    assert_eq!(
        err("name: a\nstage: []\n"),
        "x.yaml:2: stage: unknown key (expected one of: name, description, max_concurrency, inputs, vars, stages)"
    );
}

#[test]
fn wrong_types_and_values() {
    assert_eq!(
        err(
            "name: a\nstages:\n  - id: a\n    agent: coordinator\n    prompt: hi\n    output: xml\n"
        ),
        "x.yaml:6: stages[0].output: unknown value `xml` (expected one of: text, json, verdict)"
    );
    assert_eq!(
        err("name: a\nstages:\n  - agent: coordinator\n    prompt: hi\n"),
        "x.yaml:3: stages[0].id: required key is missing"
    );
    assert_eq!(
        err("name: a\nstages:\n  - id: a\n    approval: { message: go, timeout: soon }\n"),
        "x.yaml:4: stages[0].approval.timeout: `soon` is not a duration (e.g. 30s, 15m, 1h, 7d)"
    );
    assert_eq!(
        err("name: Bad_Name\nstages: []\n"),
        "x.yaml:1: name: `Bad_Name` is not a valid name (lowercase letters, digits and `-`)"
    );
    assert!(
        err("name: a\nstages: [\n").starts_with("x.yaml:"),
        "{}",
        err("name: a\nstages: [\n")
    );
    assert_eq!(
        err("name: a\nname: b\nstages: []\n"),
        "x.yaml:2: invalid YAML: duplicate key `name` (first at line 1)"
    );
}

#[test]
fn exactly_one_kind() {
    assert_eq!(
        err("name: a\nstages:\n  - id: a\n    needs: []\n"),
        "x.yaml:3: stages[0]: stage `a` does nothing: give exactly one of agent, runbook, approval, tool, loop, check"
    );
    assert_eq!(
        err(
            "name: a\nstages:\n  - id: a\n    agent: coordinator\n    prompt: hi\n    runbook: { commands: [ls] }\n"
        ),
        "x.yaml:6: stages[0].runbook: stage `a` has both `agent` and `runbook`: give exactly one of agent, runbook, approval, tool, loop, check"
    );
    assert_eq!(
        err("name: a\nstages:\n  - id: a\n    runbook: { commands: [ls] }\n    prompt: hi\n"),
        "x.yaml:5: stages[0].prompt: only agent stages take `prompt` (this is a runbook stage)"
    );
    assert_eq!(
        err("name: a\nstages:\n  - id: a\n    agent: coordinator\n"),
        "x.yaml:3: stages[0].prompt: agent stage `a` needs a `prompt`"
    );
}

#[test]
fn unknown_agent_and_platform() {
    let yaml = "name: a\nstages:\n  - id: a\n    agent: coordinator\n    prompt: hi\n  - id: b\n    agent: planer\n    prompt: hi\n";
    assert_eq!(
        err(yaml),
        "x.yaml:7: stages[1].agent: unknown agent `planer` (known: coordinator, analyst, validator, executor, researcher, verifier)"
    );
    let yaml = "name: a\nstages:\n  - id: a\n    agent: coordinator\n    platform: gemini\n    prompt: hi\n";
    assert_eq!(
        err(yaml),
        "x.yaml:5: stages[0].platform: unknown platform `gemini` (known: openai, claude)"
    );
    let opts = ValidateOptions {
        known_agents: vec!["planer".into()],
        ..ValidateOptions::default()
    };
    load_str(
        "x.yaml",
        "name: a\nstages:\n  - id: a\n    agent: planer\n    prompt: hi\n",
        &opts,
    )
    .unwrap();
}

#[test]
fn missing_stage_in_needs() {
    let yaml = "name: a\nstages:\n  - id: a\n    agent: coordinator\n    prompt: hi\n  - id: b\n    needs: [a, nope]\n    agent: executor\n    prompt: hi\n";
    assert_eq!(
        err(yaml),
        "x.yaml:7: stages[1].needs: unknown stage `nope` (known: a)"
    );
}

#[test]
fn duplicate_ids() {
    let yaml = "name: a\nstages:\n  - id: a\n    agent: coordinator\n    prompt: hi\n  - id: a\n    agent: executor\n    prompt: hi\n";
    assert_eq!(
        err(yaml),
        "x.yaml:6: stages[1].id: duplicate stage id `a` (first at line 3)"
    );
}

#[test]
fn cycles() {
    let yaml = "\
name: a
stages:
  - id: act
    needs: [verify]
    agent: executor
    prompt: do it
  - id: verify
    needs: [act]
    agent: validator
    prompt: check it
";
    assert_eq!(
        err(yaml),
        "x.yaml:8: stages[1].needs: stage `verify` depends on itself through `act` → `verify` (cycle)"
    );
    // The default dependency (previous stage) closes a cycle too; the line is the stage's.
    let yaml = "\
name: a
stages:
  - id: act
    needs: [verify]
    agent: executor
    prompt: do it
  - id: verify
    agent: validator
    prompt: check it
";
    assert_eq!(
        err(yaml),
        "x.yaml:8: stages[1].needs: stage `verify` depends on itself through `act` → `verify` (cycle)"
            .replace(":8:", ":7:")
    );
    let yaml = "name: a\nstages:\n  - id: a\n    needs: [a]\n    agent: executor\n    prompt: x\n";
    assert_eq!(
        err(yaml),
        "x.yaml:4: stages[0].needs: stage `a` depends on itself (cycle)"
    );
}

#[test]
fn template_errors() {
    let yaml = "\
name: a
stages:
  - id: a
    agent: coordinator
    prompt: \"Plan {{ task.description \"
";
    let e = err(yaml);
    assert!(
        e.starts_with(
            "x.yaml:5: stages[0].prompt: template error: syntax error: unexpected end of input"
        ),
        "{e}"
    );
    // A block scalar: the line inside the template counts.
    let yaml = "\
name: a
stages:
  - id: a
    agent: coordinator
    prompt: |
      line one
      {% if x %}
";
    let e = err(yaml);
    assert!(
        e.starts_with("x.yaml:7: stages[0].prompt: template error:"),
        "{e}"
    );
    let yaml = "name: a\nstages:\n  - id: a\n    agent: coordinator\n    prompt: hi\n    when: \"stages.a.ok ==\"\n";
    let e = err(yaml);
    assert!(
        e.starts_with("x.yaml:6: stages[0].when: template error: syntax error"),
        "{e}"
    );
}

#[test]
fn template_references() {
    let base = "name: a\ninputs:\n  service: { default: web }\nvars: { n: 1 }\nstages:\n  - id: a\n    agent: coordinator\n    prompt: hi\n  - id: b\n    needs: []\n    agent: executor\n    prompt: hi\n";
    let with = |extra: &str| {
        format!("{base}  - id: c\n    needs: [a]\n    agent: analyst\n    prompt: \"{extra}\"\n")
    };
    assert_eq!(
        err(&with("{{ stages.nope.output }}")),
        "x.yaml:16: stages[2].prompt: unknown stage `nope` (stages: a, b, c) (in `stages.nope.output`)"
    );
    assert_eq!(
        err(&with("{{ stages.b.output }}")),
        "x.yaml:16: stages[2].prompt: stage `c` reads `b`, which is not among its dependencies: add `b` to its `needs` (else the two could run at the same time) (in `stages.b.output`)"
    );
    assert_eq!(
        err(&with("{{ inputs.servce }}")),
        "x.yaml:16: stages[2].prompt: unknown input `servce` (declared: service) (in `inputs.servce`)"
    );
    assert_eq!(
        err(&with("{{ input.service }}")),
        "x.yaml:16: stages[2].prompt: unknown variable `input` (known: task, inputs, vars, stages) (in `input.service`)"
    );
    assert_eq!(
        err(&with("{{ stages.a.verdict }}")),
        "x.yaml:16: stages[2].prompt: stage `a` has no verdict (only agent stages with `output: verdict` do) (in `stages.a.verdict`)"
    );
    assert_eq!(
        err(&with("{{ stages.a.outptu }}")),
        "x.yaml:16: stages[2].prompt: unknown stage result field `outptu` (known: output, status, verdict, json, ok, commands, attempt, error) (in `stages.a.outptu`)"
    );
    assert_eq!(
        err(&with("{{ attempt }}")),
        "x.yaml:16: stages[2].prompt: `attempt` is only defined inside a loop (in `attempt`)"
    );
    // Fine: a dependency, inputs, vars, task, loop variables.
    ok(&with(
        "{{ stages.a.output }} {{ inputs.service }} {{ vars.n }} {{ task.context.x }} {% for l in stages.a.output | lines %}{{ loop.index }}{{ l }}{% endfor %}",
    ));
}

#[test]
fn loops_scope_and_transitive_dependencies() {
    let yaml = "\
name: a
stages:
  - id: plan
    agent: coordinator
    prompt: plan
  - id: fix
    loop:
      max_attempts: 3
      until: \"stages.verify.verdict == 'pass'\"
      delay: 1s
      stages:
        - id: act
          agent: executor
          prompt: \"{{ stages.plan.output }} attempt {{ attempt }}{% if attempt > 1 %} {{ stages.verify.output }}{% endif %}\"
        - id: verify
          agent: validator
          output: verdict
          prompt: \"{{ stages.act.output }}\"
  - id: report
    agent: coordinator
    prompt: \"{{ stages.verify.verdict }} after {{ stages.fix.attempt }}; {{ stages.plan.output }}\"
";
    let wf = ok(yaml);
    let StageKind::Loop(l) = &wf.stage("fix").unwrap().kind else {
        panic!()
    };
    assert_eq!(l.max_attempts, 3);
    assert_eq!(l.delay, Some(std::time::Duration::from_secs(1)));
    assert_eq!(l.stages[0].needs, Vec::<String>::new());
    assert_eq!(l.stages[1].needs, ["act"]);
    assert_eq!(wf.stage_count(), 5);
    // An outer stage must depend on the loop, not on a stage inside it.
    let bad = yaml.replace("  - id: report\n", "  - id: report\n    needs: [verify]\n");
    assert_eq!(
        err(&bad),
        "x.yaml:20: stages[2].needs: stage `verify` is inside loop `fix`: depend on `fix` instead"
    );
}

#[test]
fn needs_default_to_the_previous_stage_and_order_is_topological() {
    let yaml = "\
name: a
stages:
  - id: d
    needs: [b, c]
    agent: coordinator
    prompt: x
  - id: a
    needs: []
    agent: coordinator
    prompt: x
  - id: b
    agent: coordinator
    prompt: x
  - id: c
    needs: [a]
    agent: coordinator
    prompt: x
  - id: e
    agent: coordinator
    prompt: x
";
    let wf = ok(yaml);
    let needs: Vec<(&str, Vec<String>)> = wf
        .stages()
        .iter()
        .map(|s| (s.id.as_str(), s.needs.clone()))
        .collect();
    assert_eq!(needs[0].1, ["b", "c"]);
    assert!(needs[1].1.is_empty());
    assert_eq!(needs[2].1, ["a"]);
    assert_eq!(needs[4].1, ["c"]);
    let order: Vec<&str> = wf
        .topological_order()
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(order, ["a", "b", "c", "d", "e"]);
    let waves: Vec<Vec<&str>> = wf
        .waves()
        .iter()
        .map(|w| w.iter().map(|s| s.id.as_str()).collect())
        .collect();
    assert_eq!(waves, [vec!["a"], vec!["b", "c"], vec!["d", "e"]]);
    assert_eq!(wf.max_concurrency(), 4);
}

#[test]
fn rendering_and_conditions() {
    let mut stages = Map::new();
    let mut rec = StageOutcome::completed("{\"command\": \"systemctl restart web\"}");
    rec.json = Some(json!({"command": "systemctl restart web"}));
    stages.insert("recommend".into(), rec.to_value());
    stages.insert("skipped".into(), StageOutcome::skipped().to_value());
    let mut inputs = Map::new();
    inputs.insert("service".into(), json!("web"));
    let ctx = build_context(
        &json!({"description": "down", "priority": 5}),
        &inputs,
        &Map::new(),
        &stages,
    );
    assert_eq!(
        render(
            "Apply: {{ stages.recommend.json.command }} on {{ inputs.service }}",
            &ctx
        )
        .unwrap(),
        "Apply: systemctl restart web on web"
    );
    assert!(eval_condition("stages.recommend.json.command != ''", &ctx).unwrap());
    assert!(!eval_condition("stages.skipped.status == 'completed'", &ctx).unwrap());
    assert!(eval_condition("task.priority >= 4", &ctx).unwrap());
    let e = render("{{ stages.nope.output }}", &ctx).unwrap_err();
    assert!(
        e.to_string().starts_with("template error: undefined value"),
        "{e}"
    );
    assert!(!eval_condition("attempt > 1", &with_attempt(&ctx, 1)).unwrap());
    assert!(eval_condition("attempt > 1", &with_attempt(&ctx, 2)).unwrap());
    assert_eq!(Verdict::parse("looks fine\nPASS"), Some(Verdict::Pass));
}

#[test]
fn engine_api_renders_each_kind() {
    let wf = hybrid_workflow::builtin("incident-response")
        .unwrap()
        .load(&ValidateOptions::default())
        .unwrap();
    let mut ctx_in = Map::new();
    ctx_in.insert("log_file".into(), json!("/var/log/web.log"));
    ctx_in.insert("health_url".into(), json!("http://127.0.0.1:8080/health"));
    let inputs = wf.resolve_inputs(&ctx_in).unwrap();
    assert_eq!(inputs["service"], "web");
    let StageKind::Runbook(r) = &wf.stage("diag_logs").unwrap().kind else {
        panic!()
    };
    let ctx = wf.context(
        &json!({"description": "502s", "priority": 4}),
        &inputs,
        &Map::new(),
    );
    assert_eq!(
        r.render_commands(&ctx).unwrap(),
        ["tail -n 200 /var/log/web.log"]
    );
    let mut stages = Map::new();
    let mut rec = StageOutcome::completed("");
    rec.json =
        Some(json!({"severity": "SEV2", "root_cause": "oom", "command": "systemctl restart web"}));
    stages.insert("recommend".into(), rec.to_value());
    let ctx = wf.context(&json!({}), &inputs, &stages);
    let StageKind::Tool(t) = &wf.stage("apply_fix").unwrap().kind else {
        panic!()
    };
    assert_eq!(
        t.render_arguments(&ctx).unwrap(),
        json!({"command": "systemctl restart web"})
    );
    let StageKind::Approval(a) = &wf.stage("approve_fix").unwrap().kind else {
        panic!()
    };
    assert!(
        a.render_message(&ctx)
            .unwrap()
            .contains("Apply: systemctl restart web")
    );
    assert!(wf.stage("approve_fix").unwrap().should_run(&ctx).unwrap());
}

#[test]
fn catalog_lists_builtins_and_files_and_overrides() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("plan-execute-verify.yaml"),
        "name: plan-execute-verify\ndescription: mine\nstages:\n  - id: only\n    agent: executor\n    prompt: hi\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("extra.yml"),
        "name: extra\nstages:\n  - id: only\n    runbook: { commands: [ls] }\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("broken.yaml"), "name: broken\nstages: 3\n").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
    let cat = Catalog::discover(dir.path(), &ValidateOptions::default()).unwrap();
    let names: Vec<&str> = cat.entries().iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "plan-execute-verify",
            "incident-response",
            "code-review-deploy",
            "broken",
            "extra"
        ]
    );
    let pev = cat.get("plan-execute-verify").unwrap();
    assert!(pev.overrides_builtin);
    assert!(
        pev.source_label()
            .ends_with("plan-execute-verify.yaml (overrides the built-in)")
    );
    assert_eq!(pev.workflow.as_ref().unwrap().description(), "mine");
    assert!(cat.get("broken").unwrap().workflow.is_err());
    assert_eq!(cat.resolve("extra").unwrap().name(), "extra");
    let e = cat.resolve("nope").unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(
        e.to_string(),
        "no workflow named `nope` (known: plan-execute-verify, incident-response, code-review-deploy, broken, extra)"
    );
    let path = dir.path().join("extra.yml");
    assert_eq!(cat.resolve(path.to_str().unwrap()).unwrap().name(), "extra");
    assert!(cat.resolve("missing/file.yaml").unwrap_err().is_not_found());
    // A missing directory: built-ins only.
    let cat = Catalog::discover(&dir.path().join("none"), &ValidateOptions::default()).unwrap();
    assert_eq!(cat.entries().len(), 3);
}

#[test]
fn input_defaults_are_templates_over_earlier_inputs() {
    let yaml = "name: a\ninputs:\n  branch: {}\n  cmd: { default: \"git merge {{ inputs.branch }}\" }\nstages:\n  - id: a\n    runbook: { commands: [\"{{ inputs.cmd }}\"] }\n";
    let wf = ok(yaml);
    let mut ctx = Map::new();
    ctx.insert("branch".into(), json!("x"));
    assert_eq!(wf.resolve_inputs(&ctx).unwrap()["cmd"], "git merge x");
    ctx.insert("cmd".into(), json!("{{ not rendered }}"));
    assert_eq!(
        wf.resolve_inputs(&ctx).unwrap()["cmd"],
        "{{ not rendered }}"
    );
    let bad = "name: a\ninputs:\n  cmd: { default: \"git merge {{ inputs.branch }}\" }\n  branch: {}\nstages:\n  - id: a\n    runbook: { commands: [ls] }\n";
    assert_eq!(
        err(bad),
        "x.yaml:3: inputs.cmd.default: an input default may read only earlier inputs (`branch` is not one) (in `inputs.branch`)"
    );
}
