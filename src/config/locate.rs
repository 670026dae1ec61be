//! Find the line of a dotted key (`policy.min_workers`) in a TOML text, so
//! that a value that parsed but makes no sense can still be pointed at.

/// 1-based line of `key` (e.g. `policy.min_workers`), or of its table header
/// when the key itself is absent. Handles `[table]` headers and dotted keys
/// at the top level; good enough to point an operator at the right place.
pub fn line_of_key(text: &str, dotted: &str) -> Option<usize> {
    let (table, key) = match dotted.rsplit_once('.') {
        Some((t, k)) => (t, k),
        None => ("", dotted),
    };
    let mut current = String::new();
    let mut header_line = None;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('[') {
            current = line
                .trim_start_matches('[')
                .trim_end_matches(']')
                .trim()
                .replace(' ', "");
            if current == table {
                header_line = Some(index + 1);
            }
            continue;
        }
        let Some((lhs, _)) = line.split_once('=') else {
            continue;
        };
        let lhs = lhs.trim().trim_matches('"');
        let full = if current.is_empty() {
            lhs.to_string()
        } else {
            format!("{current}.{lhs}")
        };
        if full == dotted || (current == table && lhs == key) {
            return Some(index + 1);
        }
    }
    header_line
}

/// 1-based line containing byte `offset`.
pub fn line_of_offset(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_in_tables_and_dotted_form() {
        let text = "[cluster]\nname = \"a\"\n\n[policy]\nmin_workers = 3\nmax_workers = 2\n";
        assert_eq!(line_of_key(text, "policy.max_workers"), Some(6));
        assert_eq!(line_of_key(text, "cluster.name"), Some(2));
        assert_eq!(line_of_key(text, "policy.idle_for"), Some(4));
        assert_eq!(
            line_of_key("policy.min_workers = 1\n", "policy.min_workers"),
            Some(1)
        );
        assert_eq!(line_of_key(text, "drain.timeout"), None);
    }

    #[test]
    fn offsets_map_to_lines() {
        assert_eq!(line_of_offset("a\nb\nc", 0), 1);
        assert_eq!(line_of_offset("a\nb\nc", 2), 2);
        assert_eq!(line_of_offset("a\nb\nc", 99), 3);
    }
}
