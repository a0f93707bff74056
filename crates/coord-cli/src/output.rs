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
        println!("{v}");
    }

    /// Prints a line, coloured if colour is on.
    pub fn line(&self, style: anstyle::Style, text: &str) {
        let mut o = std::io::stdout().lock();
        let _ = if self.color {
            writeln!(o, "{style}{text}{style:#}")
        } else {
            writeln!(o, "{text}")
        };
    }
}

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
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}
