//! Support for the generated example round-trip tests.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Deserialises a spec example into `T`, serialises it back, and checks that nothing
/// was lost or changed: every key of the example is in the output with its value,
/// and the output parses back to an equal `T`. (The output may add keys the example
/// left out, such as fields with defaults.)
pub fn assert_roundtrip<T>(example: &str)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let input: Value = serde_json::from_str(example).expect("example is JSON");
    let typed: T = serde_json::from_value(input.clone())
        .unwrap_or_else(|e| panic!("example does not deserialise: {e}\n{example}"));
    let output = serde_json::to_value(&typed).expect("serialises");
    if let Some(path) = first_difference(&input, &output, String::new()) {
        panic!("round trip changed `{path}`:\n in: {input}\nout: {output}");
    }
    let again: T = serde_json::from_value(output).expect("output deserialises");
    assert_eq!(typed, again, "output parses to a different value");
}

/// The first place where `input` is not contained in `output`.
fn first_difference(input: &Value, output: &Value, path: String) -> Option<String> {
    match (input, output) {
        (Value::Object(a), Value::Object(b)) => a.iter().find_map(|(k, v)| match b.get(k) {
            Some(w) => first_difference(v, w, format!("{path}/{k}")),
            None if v.is_null() => None,
            None => Some(format!("{path}/{k}")),
        }),
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (v, w))| first_difference(v, w, format!("{path}/{i}"))),
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => None,
        (a, b) if a == b => None,
        _ => Some(if path.is_empty() { "/".into() } else { path }),
    }
}
