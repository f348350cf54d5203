//! The one "did you mean" rule of every message in both crates.

/// The candidate closest to `input`, when it is close enough to be a typo: `input`
/// (at least 3 characters) begins it, or at most `max(2, len / 3)` single-character
/// edits separate them (and fewer than the whole word).
///
/// ```
/// use throttle_grammar::suggest::did_you_mean;
///
/// let keys = ["uid", "rate", "headers", "identifier"];
/// assert_eq!(did_you_mean("rtae", &keys), Some("rate"));
/// assert_eq!(did_you_mean("identifer", &keys), Some("identifier"));
/// assert_eq!(did_you_mean("head", &keys), Some("headers"));
/// assert_eq!(did_you_mean("completely_else", &keys), None);
/// ```
pub fn did_you_mean<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    if input.len() >= 3 {
        if let Some(candidate) = candidates.iter().find(|c| c.starts_with(input)) {
            return Some(candidate);
        }
    }
    candidates
        .iter()
        .map(|candidate| (edit_distance(input, candidate), *candidate))
        .filter(|(distance, candidate)| {
            *distance <= 2.max(candidate.len() / 3) && *distance < candidate.len().max(input.len())
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance: how many single-character edits turn `a` into `b`.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// "`a`, `b` or `c`": the choices of a message, in prose.
///
/// ```
/// assert_eq!(throttle_grammar::suggest::one_of(&["a", "b", "c"]), "`a`, `b` or `c`");
/// ```
pub fn one_of(choices: &[&str]) -> String {
    let quoted: Vec<String> = choices.iter().map(|c| format!("`{c}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.concat(),
    }
}
