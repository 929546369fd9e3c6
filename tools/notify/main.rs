use std::process::ExitCode;

fn main() -> ExitCode {
    pitcrew::entry::run("notify", pitcrew::notify::main)
}
