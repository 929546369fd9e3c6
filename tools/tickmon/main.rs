use std::process::ExitCode;

fn main() -> ExitCode {
    pitcrew::entry::run("tickmon", pitcrew::tickmon::main)
}
