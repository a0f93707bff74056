//! How results are shown: aligned tables (colour only on a terminal) for
//! people, JSON for programs.

use std::io::Write;

use comfy_table::{presets, Cell, Color, ContentArrangement, Table};

/// Where output goes and in which form.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub json: bool,
    pub color: bool,
}

impl Out {
    /// Decides colour once: `--color`, else anstream's rules (a terminal,
    /// NO_COLOR and CLICOLOR_FORCE honoured).
    pub fn new(json: bool, choice: crate::cli::ColorWhen) -> Self {
        use crate::cli::ColorWhen;
        let color = !json
            && match choice {
                ColorWhen::Always => true,
                ColorWhen::Never => false,
                ColorWhen::Auto => matches!(
                    anstream::AutoStream::choice(&std::io::stdout()),
                    anstream::ColorChoice::Always | anstream::ColorChoice::AlwaysAnsi
                ),
            };
        Out { json, color }
    }

    /// A table with this output's colour setting.
    pub fn table(&self, headers: &[&str]) -> Table {
        let mut t = Table::new();
        t.load_preset(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Disabled)
            .force_no_tty();
        if self.color {
            t.enforce_styling();
        }
        t.set_header(headers.iter().map(Cell::new));
        t
    }

    /// Prints a JSON value on one line.
    pub fn print_json(&self, v: &serde_json::Value) {
        outln!("{v}");
    }

    /// Prints a line, coloured if colour is on.
    pub fn line(&self, style: anstyle::Style, text: &str) {
        let text = clean(text);
        let mut o = std::io::stdout().lock();
        let _ = if self.color {
            writeln!(o, "{style}{text}{style:#}")
        } else {
            writeln!(o, "{text}")
        };
    }
}

/// Writes a line to stdout. A closed stdout (`coord list | head -1`) is
/// not an error worth a panic: the command still runs to its real exit
/// code.
pub fn write_line(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stdout().lock(), "{args}");
}

/// `println!` that never panics on a closed stdout.
macro_rules! outln {
    () => {
        $crate::output::write_line(format_args!(""))
    };
    ($($t:tt)*) => {
        $crate::output::write_line(format_args!($($t)*))
    };
}
pub(crate) use outln;

/// A row's verification as a mark and a word, coloured by what it proves.
pub fn verification_cell(status: &str) -> Cell {
    let (text, color) = match status {
        "verified" => ("✓ verified", Color::Green),
        "retired_key" => ("✓ retired key", Color::Green),
        "unsigned" => ("- unsigned", Color::Yellow),
        "unknown_agent" => ("? unknown agent", Color::Yellow),
        "bad_mac" => ("✗ BAD MAC", Color::Red),
        other => return Cell::new(other),
    };
    Cell::new(text).fg(color)
}

/// A row against its signed history, as a mark and a word.
pub fn history_cell(history: &str) -> Cell {
    let (text, color) = match history {
        "matches" => ("✓ matches", Color::Green),
        "changed" => ("✗ CHANGED", Color::Red),
        "unverified_event" => ("✗ UNVERIFIED EVENT", Color::Red),
        "not_holder" => ("✗ NOT HOLDER", Color::Red),
        "no_history" => return Cell::new("- no history"),
        "unsigned_event" => return Cell::new("- unsigned event"),
        other => return Cell::new(other),
    };
    Cell::new(text).fg(color)
}

/// A history or witness problem for people: `✗ ROLLBACK: detail` (not
/// yet escaped: [`Out::line`] and [`clean`] do that).
pub fn problem_line(p: &coord_db::history::Problem) -> String {
    format!(
        "✗ {}: {}",
        p.what.replace('_', " ").to_uppercase(),
        p.detail
    )
}

/// Styles for one-line results.
pub mod style {
    use anstyle::{AnsiColor, Style};
    pub const OK: Style = AnsiColor::Green.on_default().bold();
    pub const REFUSED: Style = AnsiColor::Red.on_default().bold();
    pub const WARN: Style = AnsiColor::Yellow.on_default();
    pub const PLAIN: Style = Style::new();
    pub const HEADING: Style = Style::new().bold();
}

/// Text of an optional SQL value for a table cell.
pub fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map(|v| clean(&v.to_string()))
        .unwrap_or_default()
}

/// Untrusted text (task ids, agent names, bodies) made safe for a terminal:
/// control characters and bidirectional overrides are shown escaped, so a
/// row cannot move the cursor, recolour a verdict or reorder what is shown.
pub fn clean(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            o.extend(c.escape_default());
        } else {
            o.push(c);
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn escapes_what_a_terminal_would_obey() {
        assert_eq!(clean("a\tb\nc"), "a\\tb\\nc");
        assert_eq!(clean("\u{1b}[32mok"), "\\u{1b}[32mok");
        assert_eq!(clean("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(clean("café ☃ 日本語"), "café ☃ 日本語");
    }
}
