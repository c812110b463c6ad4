//! docs/configuration.md documents every option `spindle serve --help`
//! lists, so the reference cannot silently go stale.

mod support;

#[test]
fn every_serve_option_is_documented() {
    let out = std::process::Command::new(support::binary())
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .unwrap();
    let mut options: Vec<String> = help
        .split_whitespace()
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches([',', '.', ')', ':'])
                .split(['=', '['])
                .next()
                .unwrap()
                .to_string()
        })
        .filter(|w| w != "--help" && w != "--version")
        .collect();
    options.sort();
    options.dedup();
    assert!(options.len() >= 15, "{options:?}");
    let missing: Vec<_> = options
        .iter()
        .filter(|o| !doc.contains(&format!("`{o}")))
        .collect();
    assert!(
        missing.is_empty(),
        "options missing from docs/configuration.md: {missing:?}"
    );
    // And the doc names no option that no longer exists.
    for word in doc.split(['`', ' ', '|']) {
        if word.starts_with("--")
            && word.len() > 2
            && word.chars().nth(2).unwrap().is_ascii_lowercase()
        {
            let name: String = word
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                .collect();
            assert!(
                options.contains(&name),
                "docs/configuration.md mentions {name}, which spindle serve does not have"
            );
        }
    }
}
