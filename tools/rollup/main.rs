use std::process::ExitCode;

fn main() -> ExitCode {
    pitcrew::entry::run("rollup", pitcrew::rollup::main)
}
