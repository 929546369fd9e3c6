//! rollup (being built).

use std::ffi::OsString;

use crate::entry::Ctx;
use crate::error::{Error, Result, Status};

/// The `rollup` tool.
pub fn main(_ctx: &mut Ctx, _args: Vec<OsString>) -> Result<Status> {
    Err(Error::other("not built yet"))
}
