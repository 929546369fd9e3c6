use std::process::ExitCode;

fn main() -> ExitCode {
    pitcrew::entry::run("probe", pitcrew::probe::main)
}
