use std::process::ExitCode;

fn main() -> ExitCode {
    pitcrew::entry::run("recover", pitcrew::recover::main)
}
