//! Prints a `/logs3` body of the shapes the benches measure, so that the
//! load script sends exactly what the criterion benches inspect.
//!
//! Usage: `cargo run --example bodies -- <llm|escape_dense|plain> <rows> <project_id>`

#[path = "../crates/inspect/benches/common/rows.rs"]
mod rows;

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: bodies <llm|escape_dense|plain> <rows> <project_id>";
    let [shape, rows, project] = args.as_slice() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let (Some(shape), Ok(rows)) = (rows::Shape::parse(shape), rows.parse::<usize>()) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    std::io::stdout().write_all(&rows::logs3_shaped(shape, rows, project)).expect("stdout");
}
