//! [`Table`]: aligned text columns for the tools' `table` output.
//!
//! Columns are as wide as their widest cell (or header), separated by two
//! spaces; numbers are right-aligned, text left-aligned, and the last
//! column is not padded. Rows are held back and written as a block once
//! [`BLOCK_ROWS`] have come or the caller calls [`Table::flush`] (at the
//! end, and before `srs replay --follow` waits for more), so any output
//! of up to [`BLOCK_ROWS`] rows lines up under one header, and memory
//! stays bounded on a long log. Widths never shrink; a later block with a
//! wider cell prints the header again, at the new widths, before its
//! rows, so every row still lines up with the header above it.
//!
//! Widths count characters (`char`s): names are printable text
//! (`srs_domain` refuses control and bidirectional characters), but a
//! double-width character (CJK) still takes one.

use std::io::{self, Write};

/// How many rows a block holds at most before it is written.
pub const BLOCK_ROWS: usize = 10_000;

/// Where a column's cells sit in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// An aligned table written to `out` in blocks.
pub struct Table<W: Write> {
    out: W,
    headers: Vec<&'static str>,
    align: Vec<Align>,
    widths: Vec<usize>,
    rows: Vec<Vec<String>>,
    header_written: bool,
}

impl<W: Write> Table<W> {
    /// A table of `columns` (header, alignment) over `out`.
    pub fn new(out: W, columns: &[(&'static str, Align)]) -> Self {
        Table {
            out,
            headers: columns.iter().map(|(h, _)| *h).collect(),
            align: columns.iter().map(|(_, a)| *a).collect(),
            widths: columns.iter().map(|(h, _)| h.chars().count()).collect(),
            rows: Vec::new(),
            header_written: false,
        }
    }

    /// Adds a row (one cell per column; missing cells are empty, extra
    /// ones dropped); writes the block when it is full.
    pub fn row(&mut self, mut cells: Vec<String>) -> io::Result<()> {
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
        if self.rows.len() >= BLOCK_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the rows held so far (and the header, first or at new
    /// widths), then flushes `out`.
    pub fn flush(&mut self) -> io::Result<()> {
        let mut wider = false;
        for row in &self.rows {
            for (width, cell) in self.widths.iter_mut().zip(row) {
                let n = cell.chars().count();
                if n > *width {
                    *width = n;
                    wider = true;
                }
            }
        }
        if !self.header_written || (wider && !self.rows.is_empty()) {
            if self.header_written {
                writeln!(self.out)?;
            }
            let headers: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
            self.write_line(&headers)?;
            self.header_written = true;
        }
        let rows = std::mem::take(&mut self.rows);
        for row in &rows {
            self.write_line(row)?;
        }
        self.out.flush()
    }

    /// The underlying writer, after a [`Table::flush`].
    pub fn into_inner(mut self) -> io::Result<W> {
        self.flush()?;
        Ok(self.out)
    }

    fn write_line(&mut self, cells: &[String]) -> io::Result<()> {
        let mut line = String::new();
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = self.widths[i].saturating_sub(cell.chars().count());
            match self.align[i] {
                Align::Right => {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                }
                Align::Left if i == last => line.push_str(cell),
                Align::Left => {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
        }
        writeln!(self.out, "{}", line.trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(rows: &[[&str; 3]]) -> String {
        let mut table = Table::new(
            Vec::new(),
            &[
                ("N", Align::Right),
                ("NAME", Align::Left),
                ("WHO", Align::Left),
            ],
        );
        for row in rows {
            table
                .row(row.iter().map(|c| c.to_string()).collect())
                .unwrap();
        }
        String::from_utf8(table.into_inner().unwrap()).unwrap()
    }

    /// The byte offset where each column starts on a line, found from the
    /// header's words.
    fn starts(header: &str) -> Vec<usize> {
        let mut starts = Vec::new();
        let mut previous = ' ';
        for (i, c) in header.char_indices() {
            if c != ' ' && previous == ' ' {
                starts.push(i);
            }
            previous = c;
        }
        starts
    }

    #[test]
    fn columns_line_up_whatever_the_widths() {
        let text = render(&[
            ["1", "a", "principal:x"],
            [
                "123456789012",
                "a-very-long-stream-name-that-is-wider-than-any-default",
                "system:retention",
            ],
            ["42", "Zoë", "agent:1"],
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        // The second and third columns start at the same place on every
        // line, and numbers end where their column ends.
        let at = starts(lines[0]);
        assert_eq!(at.len(), 3);
        let name_col = lines[0].find("NAME").unwrap();
        let who_col = lines[0].find("WHO").unwrap();
        for line in &lines[1..] {
            let chars: Vec<char> = line.chars().collect();
            assert_ne!(chars[name_col], ' ', "{text}");
            assert_eq!(chars[name_col - 1], ' ', "{text}");
            assert_ne!(chars[who_col], ' ', "{text}");
            assert_eq!(chars[who_col - 1], ' ', "{text}");
            assert_ne!(chars[name_col - 3], ' ', "number right-aligned: {text}");
        }
        assert!(lines.iter().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn a_wider_later_block_repeats_the_header_at_its_widths() {
        let mut table = Table::new(Vec::new(), &[("A", Align::Left), ("B", Align::Left)]);
        table.row(vec!["x".into(), "1".into()]).unwrap();
        table.flush().unwrap();
        table.row(vec!["x".into(), "2".into()]).unwrap();
        table.flush().unwrap();
        table.row(vec!["wider".into(), "3".into()]).unwrap();
        let text = String::from_utf8(table.into_inner().unwrap()).unwrap();
        assert_eq!(text, "A  B\nx  1\nx  2\n\nA      B\nwider  3\n");
    }
}
