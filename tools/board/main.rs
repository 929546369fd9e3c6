use std::process::ExitCode;

fn main() -> ExitCode {
    pitcrew::entry::run("board", pitcrew::board::main)
}
