//! A `tools/call` result (in its wire JSON form) as text for the model.

use serde_json::Value;

/// Text of a `CallToolResult`: text blocks as they are, other blocks described in one line,
/// joined with newlines. With no content, the structured content as JSON.
pub(crate) fn render_result(result: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(blocks) = result.get("content").and_then(Value::as_array) {
        for block in blocks {
            parts.push(render_block(block));
        }
    }
    if parts.is_empty()
        && let Some(structured) = result.get("structuredContent")
    {
        parts.push(structured.to_string());
    }
    parts.join("\n")
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Approximate decoded size of base64 text.
fn base64_bytes(data: &str) -> usize {
    let trimmed = data.trim_end_matches('=');
    trimmed.len() * 3 / 4
}

fn render_block(block: &Value) -> String {
    let mime = str_field(block, "mimeType").unwrap_or("unknown type");
    match str_field(block, "type") {
        Some("text") => str_field(block, "text").unwrap_or_default().to_owned(),
        Some(kind @ ("image" | "audio")) => {
            let bytes = str_field(block, "data").map(base64_bytes).unwrap_or(0);
            format!("[{kind} content: {mime}, {bytes} bytes, not shown]")
        }
        Some("resource") => {
            let resource = block.get("resource").unwrap_or(&Value::Null);
            let uri = str_field(resource, "uri").unwrap_or("?");
            match str_field(resource, "text") {
                Some(text) => format!("[resource {uri}]\n{text}"),
                None => {
                    let mime = str_field(resource, "mimeType").unwrap_or("unknown type");
                    let bytes = str_field(resource, "blob").map(base64_bytes).unwrap_or(0);
                    format!("[resource {uri}: {mime}, {bytes} bytes binary, not shown]")
                }
            }
        }
        Some("resource_link") => {
            let uri = str_field(block, "uri").unwrap_or("?");
            match str_field(block, "name") {
                Some(name) if name != uri => format!("[resource link: {uri} ({name})]"),
                _ => format!("[resource link: {uri}]"),
            }
        }
        Some(other) => format!("[{other} content, not shown]"),
        None => "[content block without a type, not shown]".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_blocks() {
        let result = json!({"content": [
            {"type": "text", "text": "hello"},
            {"type": "image", "data": "AAAA", "mimeType": "image/png"},
            {"type": "resource", "resource": {"uri": "file:///a", "text": "body"}},
            {"type": "resource", "resource": {"uri": "file:///b", "blob": "AAAAAAAA", "mimeType": "application/gzip"}},
            {"type": "resource_link", "uri": "file:///c", "name": "c"},
            {"type": "audio", "data": "", "mimeType": "audio/wav"},
        ]});
        assert_eq!(
            render_result(&result),
            "hello\n[image content: image/png, 3 bytes, not shown]\n[resource file:///a]\nbody\n\
             [resource file:///b: application/gzip, 6 bytes binary, not shown]\n\
             [resource link: file:///c (c)]\n[audio content: audio/wav, 0 bytes, not shown]"
        );
    }

    #[test]
    fn structured_only() {
        let result = json!({"content": [], "structuredContent": {"t": 1}});
        assert_eq!(render_result(&result), r#"{"t":1}"#);
        assert_eq!(render_result(&json!({"isError": true})), "");
    }
}
