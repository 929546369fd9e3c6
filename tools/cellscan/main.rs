use std::process::ExitCode;

fn main() -> ExitCode {
    pitcrew::entry::run("cellscan", pitcrew::cellscan::main)
}
