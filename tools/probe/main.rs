fn main() -> std::process::ExitCode {
    pitcrew::entry::run(&pitcrew::probe::TOOL)
}
