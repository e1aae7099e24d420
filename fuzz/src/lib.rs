//! Helpers shared by the fuzz targets in `fuzz_targets/`: how an input is split into the parts a
//! target needs. Each target is a thin call into a public parsing API of a funnelgate crate; the
//! input formats are plain text so the seed corpora (`corpus/<target>/`) stay readable.

#![forbid(unsafe_code)]

/// Split `data` at the first line that is exactly `marker` (without its newline): the part before
/// and, when the marker is present, the part after.
pub fn split_at_marker<'a>(data: &'a str, marker: &str) -> (&'a str, Option<&'a str>) {
    let mut offset = 0;
    for line in data.split_inclusive('\n') {
        if line.trim_end_matches(['\n', '\r']) == marker {
            return (&data[..offset], Some(&data[offset + line.len()..]));
        }
        offset += line.len();
    }
    (data, None)
}

/// The first line of `data` and the rest (empty when there is no newline).
pub fn first_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// `KEY=VALUE` lines as an environment map (lines without `=` are ignored).
pub fn env_lines(text: &str) -> std::collections::HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Split `data` into sections separated by lines that are exactly `marker`.
pub fn sections<'a>(data: &'a [u8], marker: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut line_start = 0;
    while line_start <= data.len() {
        let end = data[line_start..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(data.len(), |i| line_start + i);
        if &data[line_start..end] == marker {
            out.push(&data[start..line_start.saturating_sub(1).max(start)]);
            start = (end + 1).min(data.len());
        }
        line_start = end + 1;
    }
    out.push(&data[start.min(data.len())..]);
    out
}
