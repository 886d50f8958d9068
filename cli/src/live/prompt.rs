//! Asking for approval, as Terraform asks: only `yes` approves, and with no terminal to ask
//! on, Kelvin refuses instead of guessing.

use std::io::{BufRead, IsTerminal};

use anyhow::{Result, bail};

use crate::console::Console;

/// Refuses up front, before any work, when approval would be needed and cannot be asked.
pub fn require_terminal(auto_approve: bool, approve_flag: &str) -> Result<()> {
    if auto_approve || std::io::stdin().is_terminal() {
        return Ok(());
    }
    bail!(
        "cannot ask for approval: standard input is not a terminal\n  fix: review the plan (kelvin plan …) and pass {approve_flag}, or apply a saved plan (kelvin plan … --out FILE, then kelvin apply FILE)"
    )
}

/// Asks `question` with `detail` lines; true only for the answer `yes`.
pub fn confirm(console: &mut Console, question: &str, detail: &[&str]) -> Result<bool> {
    ask(
        console,
        question,
        detail,
        "Only 'yes' will be accepted to approve.",
    )
}

/// Asks `question` with `detail` lines and `only_yes` last, as Terraform words it.
pub fn ask(console: &mut Console, question: &str, detail: &[&str], only_yes: &str) -> Result<bool> {
    let mut text = format!("{question}\n");
    for line in detail {
        text.push_str(&format!("  {line}\n"));
    }
    text.push_str(&format!("  {only_yes}\n\n  Enter a value: "));
    console.print(&text)?;
    console.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    console.println("")?;
    Ok(answer.trim_end_matches(['\n', '\r']) == "yes")
}
