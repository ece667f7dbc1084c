//! A tiny case-insensitive glob: `*` matches any run of characters
//! (path separators included), `?` exactly one character, everything else
//! itself. It is all the policies need (application names, hosts, URL
//! hosts, file paths), so srs carries no glob crate.

/// Whether `text` matches `pattern`, ignoring case.
///
/// Runs in O(len(pattern) * len(text)) at worst: on a mismatch it only
/// backtracks to the last `*`, never further.
pub fn matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().flat_map(char::to_lowercase).collect();
    let text: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was and which text position it is currently eating up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Whether any of `patterns` matches `text`; an empty list matches anything.
pub fn any_matches<S: AsRef<str>>(patterns: &[S], text: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| matches(p.as_ref(), text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_patterns_match_ignoring_case() {
        assert!(matches("cmd.exe", "CMD.EXE"));
        assert!(!matches("cmd.exe", "cmd.exe2"));
        assert!(!matches("cmd.exe", "cmd.ex"));
    }

    #[test]
    fn star_matches_any_run_including_none() {
        assert!(matches("*.exe", "powershell.exe"));
        assert!(matches("*", ""));
        assert!(matches("a*b*c", "abc"));
        assert!(matches("a*b*c", "aXXbYYbZc"));
        assert!(!matches("a*b*c", "aXXbYYbZ"));
        assert!(matches(
            r"c:\users\*\secret*",
            r"C:\Users\alice\Secret plans.docx"
        ));
    }

    #[test]
    fn question_mark_matches_exactly_one() {
        assert!(matches("vda-??", "VDA-01"));
        assert!(!matches("vda-??", "VDA-1"));
    }

    #[test]
    fn empty_pattern_list_matches_anything() {
        assert!(any_matches::<&str>(&[], "whatever"));
        assert!(any_matches(&["x", "*.example.com"], "www.EXAMPLE.com"));
        assert!(!any_matches(&["x"], "y"));
    }

    #[test]
    fn pathological_patterns_stay_fast() {
        let text = "a".repeat(5_000);
        assert!(!matches(&format!("{}b", "*a".repeat(50)), &text));
    }
}
