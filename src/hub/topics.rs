//! Topic selectors: `*`, an exact topic, or an RFC 6570 URI template such as
//! `https://example.com/books/{id}` that matches the topics it could expand to.
//!
//! A template is compiled once to an anchored regular expression, as the
//! reference Mercure hub does: each expression matches what its operator's
//! expansion may produce (unreserved characters and percent-escapes, plus
//! reserved ones for `{+var}` and `{#var}`, with the operator's prefix and
//! separators).

use regex::Regex;

#[derive(Debug, Clone)]
pub enum Selector {
    /// `*`: every topic.
    Any,
    Exact(String),
    Template(Regex),
}

/// Characters an unreserved expansion produces (values may be lists: `,`).
const UNRESERVED: &str = r"(?:[A-Za-z0-9\-._~,]|%[0-9A-Fa-f]{2})*";
/// What `{+var}` and `{#var}` may produce: reserved characters too.
const RESERVED: &str = r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*";

impl Selector {
    /// Parses a selector; the error says what is wrong with it.
    pub fn parse(s: &str) -> Result<Selector, String> {
        if s == "*" {
            return Ok(Selector::Any);
        }
        if s.is_empty() {
            return Err("empty topic selector".into());
        }
        if !s.contains(['{', '}']) {
            return Ok(Selector::Exact(s.to_string()));
        }
        let mut re = String::with_capacity(s.len() * 2 + 8);
        re.push('^');
        let mut rest = s;
        while let Some(open) = rest.find(['{', '}']) {
            if rest.as_bytes()[open] == b'}' {
                return Err(format!("unbalanced '}}' in {s:?}"));
            }
            re.push_str(&regex::escape(&rest[..open]));
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in {s:?}"))?;
            let expr = &after[..close];
            if expr.contains('{') {
                return Err(format!("nested '{{' in {s:?}"));
            }
            re.push_str(&expression(expr).map_err(|e| format!("{e} in {s:?}"))?);
            rest = &after[close + 1..];
        }
        re.push_str(&regex::escape(rest));
        re.push('$');
        Regex::new(&re)
            .map(Selector::Template)
            .map_err(|e| format!("{s:?}: {e}"))
    }

    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Selector::Any => true,
            Selector::Exact(t) => t == topic,
            Selector::Template(re) => re.is_match(topic),
        }
    }

    /// The exact topic, when this selector is one (for the topic index).
    pub fn exact(&self) -> Option<&str> {
        match self {
            Selector::Exact(t) => Some(t),
            _ => None,
        }
    }
}

/// The regular expression for one `{...}` expression.
fn expression(expr: &str) -> Result<String, String> {
    let (op, vars) = match expr.chars().next() {
        Some(c @ ('+' | '#' | '.' | '/' | ';' | '?' | '&')) => (Some(c), &expr[1..]),
        Some(_) => (None, expr),
        None => return Err("empty expression".into()),
    };
    let mut names = Vec::new();
    for spec in vars.split(',') {
        let (name, modifier) = match spec.find([':', '*']) {
            Some(i) => (&spec[..i], &spec[i..]),
            None => (spec, ""),
        };
        let valid_name = !name.is_empty()
            && name.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'%')
            });
        if !valid_name {
            return Err(format!("bad variable name {spec:?}"));
        }
        let valid_modifier = modifier.is_empty()
            || modifier == "*"
            || (modifier.len() > 1
                && modifier.starts_with(':')
                && modifier[1..].bytes().all(|b| b.is_ascii_digit())
                && modifier.len() <= 5);
        if !valid_modifier {
            return Err(format!("bad modifier in {spec:?}"));
        }
        names.push(regex::escape(name));
    }
    let value = match op {
        Some('+' | '#') => RESERVED,
        _ => UNRESERVED,
    };
    // Each variable may be undefined, so each part is optional.
    Ok(match op {
        None | Some('+') => {
            let one = format!("(?:{value})");
            let mut s = one.clone();
            for _ in 1..names.len() {
                s.push_str(&format!("(?:,{one})?"));
            }
            s
        }
        Some('#') => format!("(?:#{value})?"),
        Some('.') => format!("(?:\\.{value})*"),
        Some('/') => format!("(?:/{value})*"),
        Some(';') => {
            let alts = names.join("|");
            format!("(?:;(?:{alts})(?:={value})?)*")
        }
        Some('?') | Some('&') => {
            let alts = names.join("|");
            let first = if op == Some('?') { "\\?" } else { "&" };
            format!("(?:{first}(?:{alts})={value}(?:&(?:{alts})={value})*)?")
        }
        Some(_) => unreachable!("operators are matched above"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(sel: &str, topic: &str) -> bool {
        Selector::parse(sel).unwrap().matches(topic)
    }

    #[test]
    fn exact_and_any() {
        assert!(m("*", "https://example.com/anything"));
        assert!(m(
            "https://example.com/books/1",
            "https://example.com/books/1"
        ));
        assert!(!m(
            "https://example.com/books/1",
            "https://example.com/books/12"
        ));
    }

    #[test]
    fn templates_match_what_they_expand_to() {
        let t = "https://example.com/books/{id}";
        assert!(m(t, "https://example.com/books/1"));
        assert!(m(t, "https://example.com/books/a%20b"));
        assert!(!m(t, "https://example.com/books/1/reviews"));
        assert!(!m(t, "https://example.com/authors/1"));
        assert!(m(
            "https://example.com/{+path}",
            "https://example.com/a/b/c"
        ));
        assert!(m(
            "https://example.com/users{/id}",
            "https://example.com/users/7"
        ));
        assert!(m(
            "https://example.com/search{?q,lang}",
            "https://example.com/search?q=x&lang=en"
        ));
        assert!(m(
            "https://example.com/search{?q,lang}",
            "https://example.com/search"
        ));
        // Regex metacharacters in the literal part are literal.
        assert!(!m(
            "https://example.com/a.b/{x}",
            "https://example.com/aXb/1"
        ));
    }

    #[test]
    fn invalid_templates_are_refused() {
        for bad in [
            "https://x/{",
            "https://x/}",
            "https://x/{}",
            "https://x/{a b}",
            "https://x/{{a}}",
            "https://x/{a:x}",
            "",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad:?}");
        }
    }
}
