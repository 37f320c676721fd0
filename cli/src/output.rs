//! Output shaped like the `rbd` tool's, so that scripts written for `rbd group` read ours.
//!
//! `rbd` prints through Ceph's `Formatter` (`--format json|xml`, `--pretty-format`) and,
//! in plain mode, through `TextTable`. This module reproduces both, byte for byte where
//! the stock tool's output was measured (Pacific, `docs/COMPATIBILITY.md`):
//!
//! - JSON: compact `{"k":v}` with no spaces; pretty with four spaces per level and
//!   `"key": value`. Keys keep their order (stock's first, ours after).
//! - XML: one element per value, named by the section or key; array items by their own
//!   name (`<group_snaps><group_snap>…`); compact on one line, or pretty with one space per
//!   level and a blank line after the document. Text is escaped as Ceph's `XMLFormatter`
//!   does.
//! - Tables: a header row, every cell padded to its column's width (left or right
//!   aligned), columns separated by two spaces; nothing at all when there are no rows.
//! - Times: plain output prints them as `rbd` does (`ctime`, local time, e.g.
//!   `Mon Dec  7 14:08:12 2026`); JSON and XML keep machine values (ms since the epoch).

use std::fmt::Write as _;

use crate::Format;

/// A value to print: Ceph's formatter sections and scalars.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Str(String),
    Int(i64),
    Bool(bool),
    Null,
    /// An array section whose items are XML elements named `item`.
    Array {
        item: &'static str,
        items: Vec<Node>,
    },
    /// An object section.
    Object(Vec<(String, Node)>),
}

/// An object section from `(key, value)` pairs, in order.
pub(crate) fn obj(fields: Vec<(&str, Node)>) -> Node {
    Node::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

impl From<&serde_json::Value> for Node {
    /// A JSON value as a section tree (object keys in the value's order; array items are
    /// XML elements named `item`).
    fn from(value: &serde_json::Value) -> Node {
        match value {
            serde_json::Value::Null => Node::Null,
            serde_json::Value::Bool(b) => Node::Bool(*b),
            serde_json::Value::Number(n) => n.as_i64().map_or_else(|| Node::Str(n.to_string()), Node::Int),
            serde_json::Value::String(s) => Node::Str(s.clone()),
            serde_json::Value::Array(items) => {
                Node::Array { item: "item", items: items.iter().map(Node::from).collect() }
            }
            serde_json::Value::Object(map) => {
                Node::Object(map.iter().map(|(k, v)| (k.clone(), Node::from(v))).collect())
            }
        }
    }
}

impl Node {
    pub(crate) fn str(s: impl Into<String>) -> Node {
        Node::Str(s.into())
    }

    pub(crate) fn opt_str(s: Option<impl Into<String>>) -> Node {
        s.map_or(Node::Null, |s| Node::Str(s.into()))
    }

    pub(crate) fn int(v: impl TryInto<i64>) -> Node {
        Node::Int(v.try_into().unwrap_or(i64::MAX))
    }

    pub(crate) fn opt_int(v: Option<u64>) -> Node {
        v.map_or(Node::Null, Node::int)
    }
}

/// Renders `node`, the document named `name` (the XML root element), in `format` (JSON
/// or XML); the text ends with a newline (and a blank line for pretty XML, as `rbd`).
pub(crate) fn render(format: Format, pretty: bool, name: &str, node: &Node) -> String {
    let mut out = String::new();
    match format {
        Format::Json | Format::Plain => json(&mut out, node, pretty, 0),
        Format::Xml => xml(&mut out, name, node, pretty, 0),
    }
    out.push('\n');
    if format == Format::Xml && pretty {
        out.push('\n');
    }
    out
}

fn indent(out: &mut String, pretty: bool, level: usize, width: usize) {
    if pretty {
        out.push('\n');
        out.push_str(&" ".repeat(level * width));
    }
}

fn json(out: &mut String, node: &Node, pretty: bool, level: usize) {
    match node {
        Node::Str(s) => out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())),
        Node::Int(v) => {
            let _ = write!(out, "{v}");
        }
        Node::Bool(v) => {
            let _ = write!(out, "{v}");
        }
        Node::Null => out.push_str("null"),
        Node::Array { items, .. } => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, pretty, level + 1, 4);
                json(out, item, pretty, level + 1);
            }
            if !items.is_empty() {
                indent(out, pretty, level, 4);
            }
            out.push(']');
        }
        Node::Object(fields) => {
            out.push('{');
            for (i, (key, value)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, pretty, level + 1, 4);
                out.push_str(&serde_json::to_string(key).unwrap_or_default());
                out.push_str(if pretty { ": " } else { ":" });
                json(out, value, pretty, level + 1);
            }
            if !fields.is_empty() {
                indent(out, pretty, level, 4);
            }
            out.push('}');
        }
    }
}

/// Ceph's `XMLFormatter` escaping.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

fn xml(out: &mut String, name: &str, node: &Node, pretty: bool, level: usize) {
    if level > 0 {
        indent(out, pretty, level, 1);
    }
    let _ = write!(out, "<{name}>");
    match node {
        Node::Str(s) => out.push_str(&xml_escape(s)),
        Node::Int(v) => {
            let _ = write!(out, "{v}");
        }
        Node::Bool(v) => {
            let _ = write!(out, "{v}");
        }
        Node::Null => {}
        Node::Array { item, items } => {
            for value in items {
                xml(out, item, value, pretty, level + 1);
            }
            if !items.is_empty() {
                indent(out, pretty, level, 1);
            }
        }
        Node::Object(fields) => {
            for (key, value) in fields {
                xml(out, key, value, pretty, level + 1);
            }
            if !fields.is_empty() {
                indent(out, pretty, level, 1);
            }
        }
    }
    let _ = write!(out, "</{name}>");
}

/// Column alignment.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

/// `rbd`'s `TextTable`.
pub(crate) struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(columns: &[(&'static str, Align)]) -> Table {
        Table { columns: columns.to_vec(), rows: Vec::new() }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table, or nothing when it has no rows (as `rbd group snap ls`).
    pub(crate) fn render(&self) -> String {
        if self.rows.is_empty() {
            return String::new();
        }
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, (heading, _))| {
                self.rows
                    .iter()
                    .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                    .max()
                    .unwrap_or(0)
                    .max(heading.len())
            })
            .collect();
        let mut out = String::new();
        let mut line = |cells: Vec<&str>| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&self.columns)
                .zip(&widths)
                .map(|((cell, (_, align)), width)| match align {
                    Align::Left => format!("{cell:<width$}"),
                    Align::Right => format!("{cell:>width$}"),
                })
                .collect();
            out.push_str(&padded.join("  "));
            out.push('\n');
        };
        line(self.columns.iter().map(|(h, _)| *h).collect());
        for row in &self.rows {
            line(row.iter().map(String::as_str).collect());
        }
        out
    }
}

/// A time as `rbd` prints it in plain output (`ctime`: local time, no newline).
pub(crate) fn rbd_time(ms: u64) -> String {
    rbd_cg_rados::ctime(i64::try_from(ms / 1000).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snaps() -> Node {
        let snap = |name: &str| obj(vec![("snapshot", Node::str(name)), ("state", Node::str("ok"))]);
        Node::Array { item: "group_snap", items: vec![snap("s1"), snap("s2")] }
    }

    /// The outputs of stock `rbd group snap ls` and `rbd group ls` on Pacific, as captured.
    #[test]
    fn json_and_xml_match_rbd_byte_for_byte() {
        assert_eq!(
            render(Format::Json, false, "group_snaps", &snaps()),
            "[{\"snapshot\":\"s1\",\"state\":\"ok\"},{\"snapshot\":\"s2\",\"state\":\"ok\"}]\n"
        );
        assert_eq!(
            render(Format::Json, true, "group_snaps", &snaps()),
            "[\n    {\n        \"snapshot\": \"s1\",\n        \"state\": \"ok\"\n    },\n    {\n        \
             \"snapshot\": \"s2\",\n        \"state\": \"ok\"\n    }\n]\n"
        );
        assert_eq!(
            render(Format::Xml, false, "group_snaps", &snaps()),
            "<group_snaps><group_snap><snapshot>s1</snapshot><state>ok</state></group_snap><group_snap>\
             <snapshot>s2</snapshot><state>ok</state></group_snap></group_snaps>\n"
        );
        let names = Node::Array { item: "name", items: vec![Node::str("cg1"), Node::str("cgopt")] };
        assert_eq!(
            render(Format::Xml, true, "groups", &names),
            "<groups>\n <name>cg1</name>\n <name>cgopt</name>\n</groups>\n\n"
        );
        assert_eq!(render(Format::Json, true, "groups", &names), "[\n    \"cg1\",\n    \"cgopt\"\n]\n");
        let empty = Node::Array { item: "group_snap", items: vec![] };
        assert_eq!(render(Format::Json, false, "group_snaps", &empty), "[]\n");
        assert_eq!(render(Format::Xml, false, "group_snaps", &empty), "<group_snaps></group_snaps>\n");
        assert_eq!(
            render(Format::Xml, false, "x", &obj(vec![("n", Node::str("a<&>'\"b")), ("m", Node::Null)])),
            "<x><n>a&lt;&amp;&gt;&apos;&quot;b</n><m></m></x>\n"
        );
    }

    #[test]
    fn tables_pad_like_textable() {
        let mut table = Table::new(&[("NAME", Align::Left), ("STATUS", Align::Right)]);
        table.row(vec!["a".into(), "ok".into()]);
        table.row(vec!["longername".into(), "ok".into()]);
        assert_eq!(table.render(), "NAME        STATUS\na               ok\nlongername      ok\n");
        assert_eq!(Table::new(&[("NAME", Align::Left)]).render(), "");
    }
}
