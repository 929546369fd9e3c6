//! The mission-cell files, read and validated.
//!
//! A file is parsed once into a struct of borrowed raw JSON values (no copy of the document),
//! then each field is checked on its own: a missing required field, a value of the wrong type
//! or outside its enum becomes an [`Issue`] naming `file:line:column`, and every other field
//! of the file is still read. Nothing here touches the disk except through the bytes it is
//! handed.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::clock;
use crate::config::CommandLine;
use crate::record::Level;
use crate::util::fields::{self, Json, Mismatch, want};

/// An enum of the spec, written as a lower-case string.
pub(crate) trait Choice: Sized + Copy + 'static {
    /// What it is, for messages (`role`).
    const WHAT: &'static str;
    /// Every value, as written.
    const ALL: &'static [&'static str];
    fn parse(s: &str) -> Option<Self>;
    fn as_str(self) -> &'static str;
}

macro_rules! choice {
    ($(#[$doc:meta])* $vis:vis $name:ident, $what:literal, { $($var:ident = $s:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
        $vis enum $name {
            $(#[doc = concat!("Written `", $s, "`.")] #[value(name = $s)] $var),+
        }

        impl Choice for $name {
            const WHAT: &'static str = $what;
            const ALL: &'static [&'static str] = &[$($s),+];
            fn parse(s: &str) -> Option<Self> {
                match s {
                    $($s => Some(Self::$var),)+
                    _ => None,
                }
            }
            fn as_str(self) -> &'static str {
                match self {
                    $(Self::$var => $s),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

choice!(
    /// A cell's status.
    pub(crate) CellStatus, "status", { Active = "active", Paused = "paused", Completed = "completed", Failed = "failed" }
);
choice!(
    /// A cell's isolation level.
    pub Isolation, "isolation level", { None = "none", Level1 = "level_1", Level2 = "level_2", Level3 = "level_3" }
);
choice!(
    /// What to do about a failed agent.
    pub(crate) AutoRevive, "auto_revive", { Yes = "yes", No = "no", Ask = "ask" }
);
choice!(
    /// Who may hand a task over without a person's approval.
    pub(crate) HandoffApproval, "handoff_approval", { Auto = "auto", Manual = "manual" }
);
choice!(
    /// An agent's role.
    pub(crate) Role, "role", { Lead = "lead", Write = "write", Read = "read", Audit = "audit" }
);
choice!(
    /// An agent's status.
    pub(crate) AgentStatus, "status", { Idle = "idle", Active = "active", Paused = "paused", Failed = "failed" }
);
choice!(
    /// A task's status.
    pub(crate) TaskStatus, "status", {
        Pending = "pending", InProgress = "in_progress", Completed = "completed", Failed = "failed"
    }
);
choice!(
    /// A task's priority.
    pub(crate) Priority, "priority", { High = "high", Medium = "medium", Low = "low" }
);

/// `a, b, c or d`.
pub(crate) fn one_of(all: &[&str]) -> String {
    match all {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The checkpoint interval when the cell does not give one (the spec's value).
pub(crate) const DEFAULT_CHECKPOINT_INTERVAL: u64 = 300;
/// The revive command's time limit when policies.json does not give one (the spec's value).
pub(crate) const DEFAULT_REVIVE_TIMEOUT: u64 = 300;
/// Seconds between two revivals of one agent, by default.
pub(crate) const DEFAULT_REVIVE_COOLDOWN: u64 = 300;
/// Seconds the verify step of a revival waits for a fresh heartbeat, by default.
pub(crate) const DEFAULT_VERIFY_TIMEOUT: u64 = 30;
/// Revivals of one agent before giving up until a quiet hour passes, by default.
pub(crate) const DEFAULT_MAX_RETRIES: u32 = 3;

/// One problem found in a cell, before it becomes a `finding` record.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub(crate) level: Level,
    pub(crate) problem: &'static str,
    /// The file it is about, relative to the cell (`agents/agent_001.json`); none for the
    /// cell as a whole.
    pub(crate) file: Option<String>,
    pub(crate) path: PathBuf,
    pub(crate) detail: String,
    /// Seconds of age behind the problem (stale checkpoint, overdue task), kept out of the
    /// detail so that the detail stays the same from one scan to the next.
    pub(crate) age_s: Option<u64>,
    /// The check this problem follows from (`gateway:<name>`), so that notify announces
    /// that one and mentions this under it.
    pub(crate) suppressed_by: Option<String>,
}

/// The context of one file being read: where it is, its bytes, and where issues go.
pub struct FileCtx<'a> {
    pub(crate) path: &'a Path,
    pub(crate) file: &'a str,
    pub(crate) bytes: &'a [u8],
    pub(crate) issues: &'a mut Vec<Issue>,
}

/// 1-based line and column of byte `off` in `bytes`.
pub(crate) fn line_col(bytes: &[u8], off: usize) -> (usize, usize) {
    let before = &bytes[..off.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = match before.iter().rposition(|&b| b == b'\n') {
        Some(nl) => off - nl,
        None => off + 1,
    };
    (line, col)
}

impl<'a> FileCtx<'a> {
    /// A file's bytes to read, `file` as findings name it, its problems going to `issues`.
    pub fn new(path: &'a Path, file: &'a str, bytes: &'a [u8], issues: &'a mut Vec<Issue>) -> FileCtx<'a> {
        FileCtx { path, file, bytes, issues }
    }

    /// Record an issue about this file.
    pub(crate) fn issue(&mut self, level: Level, problem: &'static str, detail: String) {
        self.issues.push(Issue {
            level,
            problem,
            file: Some(self.file.to_string()),
            path: self.path.to_path_buf(),
            detail,
            age_s: None,
            suppressed_by: None,
        });
    }

    /// `path:line:column` of a raw value of this file (just `path` if it is not one).
    pub(crate) fn at(&self, raw: &RawValue) -> String {
        let start = self.bytes.as_ptr() as usize;
        let p = raw.get().as_ptr() as usize;
        if p < start || p > start + self.bytes.len() {
            return self.path.display().to_string();
        }
        let (line, col) = line_col(self.bytes, p - start);
        format!("{}:{line}:{col}", self.path.display())
    }

    /// A value of a field that is wrong: `bad_value`, with its place.
    pub(crate) fn bad(&mut self, raw: &RawValue, field: &str, why: impl std::fmt::Display) {
        let detail = format!("{}: {field}: {why}", self.at(raw));
        self.issue(Level::Error, "bad_value", detail);
    }

    /// A required field that is absent or null.
    pub(crate) fn missing(&mut self, field: &str) {
        let detail = format!("{}: missing required field '{field}'", self.path.display());
        self.issue(Level::Error, "missing_field", detail);
    }

    fn require<'r>(&mut self, field: &str, raw: Option<&'r RawValue>, required: bool) -> Option<&'r RawValue> {
        if raw.is_none() && required {
            self.missing(field);
        }
        raw
    }

    /// A string field.
    pub(crate) fn string(&mut self, field: &str, raw: Option<&RawValue>, required: bool) -> Option<String> {
        let raw = self.require(field, raw, required)?;
        match fields::string(raw) {
            Ok(s) if s.trim().is_empty() && required => {
                self.bad(raw, field, "must not be empty");
                None
            }
            Ok(s) => Some(s),
            Err(m) => {
                self.bad(raw, field, m);
                None
            }
        }
    }

    /// An identifier: a string safe as a file name (letters, digits, `-`, `_`, `.`).
    pub(crate) fn id(&mut self, field: &str, raw: Option<&RawValue>, required: bool) -> Option<String> {
        let s = self.string(field, raw, required)?;
        if crate::util::is_safe_id(&s) {
            Some(s)
        } else {
            if let Some(raw) = raw {
                self.bad(raw, field, format_args!("'{s}' is not a usable id (letters, digits, '-', '_', '.')"));
            }
            None
        }
    }

    /// A field of an enum: the text as written (kept for the records even when unknown) and
    /// the value when it is one of the spec's.
    pub(crate) fn choice<E: Choice>(&mut self, field: &str, raw: Option<&RawValue>, required: bool) -> Picked<E> {
        let Some(text) = self.string(field, raw, required) else { return Picked::default() };
        let value = E::parse(&text);
        if value.is_none()
            && let Some(raw) = raw
        {
            self.bad(raw, field, format_args!("unknown {} '{text}' (expected {})", E::WHAT, one_of(E::ALL)));
        }
        Picked { text: Some(text), value }
    }

    /// A number of seconds (or a count): a non-negative number; fractions are rounded.
    pub(crate) fn seconds(&mut self, field: &str, raw: Option<&RawValue>, required: bool) -> Option<u64> {
        let raw = self.require(field, raw, required)?;
        match fields::number(raw) {
            Ok(f) if f.is_finite() && f >= 0.0 => Some(f.round() as u64),
            Ok(f) => {
                self.bad(raw, field, format_args!("{f} is negative"));
                None
            }
            Err(_) if raw.kind() == want::NUMBER => {
                // 1e400: JSON, but past any double.
                self.bad(raw, field, fields::out_of_range(raw.get()));
                None
            }
            Err(m) => {
                self.bad(raw, field, m);
                None
            }
        }
    }

    /// A boolean.
    pub(crate) fn boolean(&mut self, field: &str, raw: Option<&RawValue>) -> Option<bool> {
        let raw = raw?;
        match fields::boolean(raw) {
            Ok(b) => Some(b),
            Err(m) => {
                self.bad(raw, field, m);
                None
            }
        }
    }

    /// An ISO-8601 / RFC 3339 time.
    pub(crate) fn time(&mut self, field: &str, raw: Option<&RawValue>, required: bool) -> Option<OffsetDateTime> {
        let s = self.string(field, raw, required)?;
        match clock::parse_ts(&s) {
            Some(t) => Some(t),
            None => {
                if let Some(raw) = raw {
                    self.bad(raw, field, format_args!("'{s}' is not an ISO-8601 time"));
                }
                None
            }
        }
    }

    /// A string field whose value is not kept: only its type is checked.
    pub(crate) fn check_string(&mut self, field: &str, raw: Option<&RawValue>) {
        if let Some(raw) = raw
            && let Err(m) = fields::kind(raw, want::STRING)
        {
            self.bad(raw, field, m);
        }
    }

    /// A list of strings whose values are not kept: only the types are checked.
    pub(crate) fn check_strings(&mut self, field: &str, raw: Option<&RawValue>) {
        let Some(raw) = raw else { return };
        match serde_json::from_str::<Vec<&RawValue>>(raw.get()) {
            Ok(v) if v.iter().all(|x| fields::kind(*x, want::STRING).is_ok()) => {}
            _ => self.bad(raw, field, Mismatch::of_kind(want::STRING_LIST, raw).brief()),
        }
    }

    /// A list of strings.
    pub(crate) fn strings(&mut self, field: &str, raw: Option<&RawValue>) -> Vec<String> {
        let Some(raw) = raw else { return Vec::new() };
        match fields::string_list(raw) {
            Ok(v) => v,
            Err(m) => {
                self.bad(raw, field, m.brief());
                Vec::new()
            }
        }
    }

    /// A nested object, parsed into `T` (whose raw values still point into this file).
    pub(crate) fn object<'de, T: Deserialize<'de>>(&mut self, field: &str, raw: Option<&'de RawValue>) -> Option<T> {
        let raw = raw?;
        match serde_json::from_str::<T>(raw.get()) {
            Ok(t) => Some(t),
            Err(e) => match fields::kind(raw, want::OBJECT) {
                Ok(()) => {
                    self.bad(raw, field, e);
                    None
                }
                Err(m) => {
                    self.bad(raw, field, m);
                    None
                }
            },
        }
    }

    /// Parse the whole document. Syntax errors are `invalid_json` with the place; a document
    /// that is JSON but not an object (or repeats a field) is `bad_value`.
    pub(crate) fn document<T: Deserialize<'a>>(&mut self) -> Option<T> {
        // A derived struct would also take an array, field by field: only an object will do.
        let is_object = self.bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        if !is_object {
            if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(self.bytes) {
                let detail = crate::ndjson::doc_error(self.path, &e);
                self.issue(Level::Error, "invalid_json", detail);
            } else {
                let detail = format!("{}: expected a JSON object", self.path.display());
                self.issue(Level::Error, "bad_value", detail);
            }
            return None;
        }
        match serde_json::from_slice::<T>(self.bytes) {
            Ok(t) => Some(t),
            Err(e) => {
                let problem = match e.classify() {
                    serde_json::error::Category::Data => "bad_value",
                    _ => "invalid_json",
                };
                self.issue(Level::Error, problem, crate::ndjson::doc_error(self.path, &e));
                None
            }
        }
    }
}

/// An enum field as read: the text as written, and the value when the text is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Picked<E> {
    pub(crate) text: Option<String>,
    pub(crate) value: Option<E>,
}

impl<E> Default for Picked<E> {
    fn default() -> Self {
        Picked { text: None, value: None }
    }
}

// ---------------------------------------------------------------------------------------
// The documents, as raw borrowed values.

type Raw<'a> = Option<&'a RawValue>;

#[derive(Deserialize)]
struct RawCell<'a> {
    #[serde(borrow, default)]
    cell_id: Raw<'a>,
    #[serde(borrow, default)]
    mission_name: Raw<'a>,
    #[serde(borrow, default)]
    created_at: Raw<'a>,
    #[serde(borrow, default)]
    created_by: Raw<'a>,
    #[serde(borrow, default)]
    status: Raw<'a>,
    #[serde(borrow, default)]
    isolation_level: Raw<'a>,
    #[serde(borrow, default)]
    max_agents: Raw<'a>,
    #[serde(borrow, default)]
    timeout: Raw<'a>,
    #[serde(borrow, default)]
    policies: Raw<'a>,
}

#[derive(Deserialize)]
struct RawCellPolicies<'a> {
    #[serde(borrow, default)]
    auto_revive: Raw<'a>,
    #[serde(borrow, default)]
    handoff_allowed: Raw<'a>,
    #[serde(borrow, default)]
    checkpoint_interval: Raw<'a>,
}

#[derive(Deserialize)]
struct RawPolicies<'a> {
    #[serde(borrow, default)]
    auto_revive: Raw<'a>,
    #[serde(borrow, default)]
    revive_command: Raw<'a>,
    #[serde(borrow, default)]
    revive_timeout: Raw<'a>,
    #[serde(borrow, default)]
    revive_cooldown_seconds: Raw<'a>,
    #[serde(borrow, default)]
    max_retries: Raw<'a>,
    #[serde(borrow, default)]
    reset_after_seconds: Raw<'a>,
    #[serde(borrow, default)]
    verify_delay_seconds: Raw<'a>,
    #[serde(borrow, default)]
    substitute_agents: Raw<'a>,
    #[serde(borrow, default)]
    handoff_allowed: Raw<'a>,
    #[serde(borrow, default)]
    handoff_approval: Raw<'a>,
    #[serde(borrow, default)]
    checkpoint_required: Raw<'a>,
    #[serde(borrow, default)]
    verify_timeout_seconds: Raw<'a>,
}

#[derive(Deserialize)]
struct RawIsolation<'a> {
    #[serde(borrow, default)]
    level: Raw<'a>,
}

#[derive(Deserialize)]
struct RawAgent<'a> {
    #[serde(borrow, default)]
    agent_id: Raw<'a>,
    #[serde(borrow, default)]
    name: Raw<'a>,
    #[serde(borrow, default)]
    role: Raw<'a>,
    #[serde(borrow, default)]
    capabilities: Raw<'a>,
    #[serde(borrow, default)]
    gateway: Raw<'a>,
    #[serde(borrow, default)]
    status: Raw<'a>,
    #[serde(borrow, default)]
    current_task: Raw<'a>,
    #[serde(borrow, default)]
    checkpoint: Raw<'a>,
    #[serde(borrow, default)]
    heartbeat_id: Raw<'a>,
}

#[derive(Deserialize)]
struct RawCheckpoint<'a> {
    #[serde(borrow, default)]
    last_checkpoint: Raw<'a>,
}

#[derive(Deserialize)]
struct RawTask<'a> {
    #[serde(borrow, default)]
    task_id: Raw<'a>,
    #[serde(borrow, default)]
    title: Raw<'a>,
    #[serde(borrow, default)]
    description: Raw<'a>,
    #[serde(borrow, default)]
    assigned_to: Raw<'a>,
    #[serde(borrow, default)]
    status: Raw<'a>,
    #[serde(borrow, default)]
    priority: Raw<'a>,
    #[serde(borrow, default)]
    dependencies: Raw<'a>,
    #[serde(borrow, default)]
    timeout: Raw<'a>,
    #[serde(borrow, default)]
    created_at: Raw<'a>,
    #[serde(borrow, default)]
    started_at: Raw<'a>,
    #[serde(borrow, default)]
    completed_at: Raw<'a>,
}

#[derive(Deserialize)]
struct RawPermission<'a> {
    #[serde(borrow, default)]
    read: Raw<'a>,
    #[serde(borrow, default)]
    write: Raw<'a>,
    #[serde(borrow, default)]
    execute: Raw<'a>,
    #[serde(borrow, default)]
    handoff_to: Raw<'a>,
    #[serde(borrow, default)]
    handoff_from: Raw<'a>,
}

// ---------------------------------------------------------------------------------------
// The validated values.

/// cell.json.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CellDoc {
    /// `cell_id`, when it is a usable id.
    pub cell_id: Option<String>,
    pub(crate) mission_name: Option<String>,
    pub(crate) created_at: Option<OffsetDateTime>,
    pub(crate) status: Picked<CellStatus>,
    pub(crate) isolation: Picked<Isolation>,
    pub(crate) max_agents: Option<u64>,
    pub(crate) timeout: Option<u64>,
    pub(crate) auto_revive: Option<AutoRevive>,
    pub(crate) checkpoint_interval: Option<u64>,
    pub(crate) handoff_allowed: Option<bool>,
}

/// Read cell.json. Required: `cell_id`, `mission_name`, `status`, `isolation_level`.
pub fn read_cell(cx: &mut FileCtx<'_>) -> Option<CellDoc> {
    let raw: RawCell<'_> = cx.document()?;
    cx.check_string("created_by", raw.created_by);
    let mut doc = CellDoc {
        cell_id: cx.id("cell_id", raw.cell_id, true),
        mission_name: cx.string("mission_name", raw.mission_name, true),
        created_at: cx.time("created_at", raw.created_at, false),
        status: cx.choice("status", raw.status, true),
        isolation: cx.choice("isolation_level", raw.isolation_level, true),
        max_agents: cx.seconds("max_agents", raw.max_agents, false),
        timeout: cx.seconds("timeout", raw.timeout, false),
        ..CellDoc::default()
    };
    if let Some(p) = cx.object::<RawCellPolicies<'_>>("policies", raw.policies) {
        doc.auto_revive = cx.choice::<AutoRevive>("policies.auto_revive", p.auto_revive, false).value;
        doc.handoff_allowed = cx.boolean("policies.handoff_allowed", p.handoff_allowed);
        doc.checkpoint_interval = cx.seconds("policies.checkpoint_interval", p.checkpoint_interval, false);
    }
    Some(doc)
}

/// config/policies.json, with the defaults of what it leaves out.
#[derive(Debug, Clone, PartialEq)]
pub struct Policies {
    /// True when the file exists.
    pub(crate) present: bool,
    pub(crate) auto_revive: Option<AutoRevive>,
    pub(crate) revive_command: Option<CommandLine>,
    pub(crate) revive_timeout: u64,
    pub(crate) cooldown_seconds: u64,
    pub(crate) max_retries: u32,
    /// True when the file sets `max_retries`.
    pub(crate) max_retries_set: bool,
    pub(crate) reset_after_seconds: u64,
    pub(crate) verify_delay_seconds: f64,
    pub(crate) checkpoint_required: bool,
    pub(crate) substitute_agents: Vec<String>,
    /// Seconds the verify step waits for a fresh heartbeat.
    pub(crate) verify_timeout_seconds: u64,
    /// `handoff_allowed`, when the file says.
    pub(crate) handoff_allowed: Option<bool>,
    /// `handoff_approval`, when the file says.
    pub(crate) handoff_approval: Option<HandoffApproval>,
}

impl Default for Policies {
    fn default() -> Policies {
        Policies {
            present: false,
            auto_revive: None,
            revive_command: None,
            revive_timeout: DEFAULT_REVIVE_TIMEOUT,
            cooldown_seconds: DEFAULT_REVIVE_COOLDOWN,
            max_retries: DEFAULT_MAX_RETRIES,
            max_retries_set: false,
            reset_after_seconds: 3600,
            verify_delay_seconds: 0.0,
            checkpoint_required: true,
            substitute_agents: Vec::new(),
            verify_timeout_seconds: DEFAULT_VERIFY_TIMEOUT,
            handoff_allowed: None,
            handoff_approval: None,
        }
    }
}

/// Read config/policies.json.
pub fn read_policies(cx: &mut FileCtx<'_>) -> Policies {
    let mut p = Policies { present: true, ..Policies::default() };
    let Some(raw) = cx.document::<RawPolicies<'_>>() else { return p };
    p.auto_revive = cx.choice::<AutoRevive>("auto_revive", raw.auto_revive, false).value;
    if let Some(cmd) = raw.revive_command {
        if let Ok(s) = serde_json::from_str::<String>(cmd.get()) {
            if s.trim().is_empty() {
                cx.bad(cmd, "revive_command", "must not be empty");
            } else {
                p.revive_command = Some(CommandLine::Shell(s));
            }
        } else if let Ok(v) = serde_json::from_str::<Vec<String>>(cmd.get()) {
            if v.is_empty() {
                cx.bad(cmd, "revive_command", "must not be empty");
            } else {
                p.revive_command = Some(CommandLine::Argv(v));
            }
        } else {
            cx.bad(cmd, "revive_command", "expected a shell command or a list of arguments");
        }
    }
    if let Some(n) = cx.seconds("revive_timeout", raw.revive_timeout, false) {
        p.revive_timeout = n.max(1);
    }
    if let Some(n) = cx.seconds("revive_cooldown_seconds", raw.revive_cooldown_seconds, false) {
        p.cooldown_seconds = n;
    }
    if let Some(n) = cx.seconds("max_retries", raw.max_retries, false) {
        p.max_retries = u32::try_from(n).unwrap_or(u32::MAX);
        p.max_retries_set = true;
    }
    if let Some(n) = cx.seconds("reset_after_seconds", raw.reset_after_seconds, false) {
        p.reset_after_seconds = n;
    }
    if let Some(n) = cx.seconds("verify_delay_seconds", raw.verify_delay_seconds, false) {
        p.verify_delay_seconds = n as f64;
    }
    p.substitute_agents = cx.strings("substitute_agents", raw.substitute_agents);
    p.handoff_allowed = cx.boolean("handoff_allowed", raw.handoff_allowed);
    p.handoff_approval = cx.choice::<HandoffApproval>("handoff_approval", raw.handoff_approval, false).value;
    if let Some(n) = cx.seconds("verify_timeout_seconds", raw.verify_timeout_seconds, false) {
        p.verify_timeout_seconds = n;
    }
    if let Some(b) = cx.boolean("checkpoint_required", raw.checkpoint_required) {
        p.checkpoint_required = b;
    }
    p
}

/// Read config/isolation.json: its level, when valid.
pub fn read_isolation(cx: &mut FileCtx<'_>) -> Option<Isolation> {
    let raw = cx.document::<RawIsolation<'_>>()?;
    cx.choice::<Isolation>("level", raw.level, false).value
}

/// One agent's permissions (config/permissions.json), by the ids it names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Permission {
    pub(crate) agent: String,
    pub(crate) tasks: Vec<String>,
    pub(crate) agents: Vec<String>,
    /// `handoff_to`, when given.
    pub(crate) handoff_to: Option<Vec<String>>,
    /// `handoff_from`, when given.
    pub(crate) handoff_from: Option<Vec<String>>,
}

/// Read config/permissions.json: `{agent: {read, write, execute: [task], handoff_to,
/// handoff_from: [agent]}}`.
pub fn read_permissions(cx: &mut FileCtx<'_>) -> Vec<Permission> {
    let Some(map) = cx.document::<std::collections::BTreeMap<String, &RawValue>>() else { return Vec::new() };
    let mut out = Vec::new();
    for (agent, raw) in map {
        let Some(p) = cx.object::<RawPermission<'_>>(&agent, Some(raw)) else { continue };
        let mut perm = Permission { agent: agent.clone(), ..Permission::default() };
        let lists = [
            ("read", p.read, false),
            ("write", p.write, false),
            ("execute", p.execute, false),
            ("handoff_to", p.handoff_to, true),
            ("handoff_from", p.handoff_from, true),
        ];
        for (name, list, of_agents) in lists {
            let Some(raw) = list else { continue };
            match serde_json::from_str::<Vec<String>>(raw.get()) {
                Ok(v) if of_agents => {
                    if name == "handoff_to" {
                        perm.handoff_to = Some(v.clone());
                    } else {
                        perm.handoff_from = Some(v.clone());
                    }
                    perm.agents.extend(v)
                }
                Ok(v) => perm.tasks.extend(v),
                Err(_) => cx.bad(raw, &format!("{agent}.{name}"), "expected a list of strings"),
            }
        }
        out.push(perm);
    }
    out
}

/// Where an agent's last checkpoint time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckpointSource {
    /// `checkpoint.last_checkpoint` in the agent file.
    File,
    /// The modification time of `checkpoints/<agent>/state.json`.
    StateMtime,
}

/// An agent file.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    /// `agents/<name>.json`.
    pub(crate) file: String,
    pub(crate) path: PathBuf,
    /// `agent_id`, a usable id (a file without one is no agent).
    pub id: String,
    pub(crate) name: Option<String>,
    pub(crate) role: Picked<Role>,
    pub(crate) status: Picked<AgentStatus>,
    pub(crate) gateway: Option<String>,
    pub(crate) current_task: Option<String>,
    pub(crate) last_checkpoint: Option<(OffsetDateTime, CheckpointSource)>,
    /// The id the agent uses with the heartbeat endpoint (`heartbeat_id`, else `agent_id`).
    pub heartbeat_id: String,
}

/// Read an agent file. Required: `agent_id`, `role`, `status`; `checkpoint` may be null, and
/// when it is an object its `last_checkpoint` is required.
pub fn read_agent(cx: &mut FileCtx<'_>) -> Option<Agent> {
    let raw: RawAgent<'_> = cx.document()?;
    let id = cx.id("agent_id", raw.agent_id, true);
    let name = cx.string("name", raw.name, false);
    let role = cx.choice("role", raw.role, true);
    let status = cx.choice("status", raw.status, true);
    let gateway = cx.string("gateway", raw.gateway, false);
    let current_task = cx.string("current_task", raw.current_task, false);
    cx.check_strings("capabilities", raw.capabilities);
    let heartbeat_id = cx.id("heartbeat_id", raw.heartbeat_id, false);
    let mut last_checkpoint = None;
    if let Some(cp) = cx.object::<RawCheckpoint<'_>>("checkpoint", raw.checkpoint) {
        if cp.last_checkpoint.is_none() {
            cx.missing("checkpoint.last_checkpoint");
        }
        last_checkpoint =
            cx.time("checkpoint.last_checkpoint", cp.last_checkpoint, false).map(|t| (t, CheckpointSource::File));
    }
    let id = id?;
    Some(Agent {
        file: cx.file.to_string(),
        path: cx.path.to_path_buf(),
        heartbeat_id: heartbeat_id.unwrap_or_else(|| id.clone()),
        id,
        name,
        role,
        status,
        gateway,
        current_task,
        last_checkpoint,
    })
}

/// A task file.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// `tasks/<name>.json`.
    pub(crate) file: String,
    pub(crate) path: PathBuf,
    /// `task_id`, a usable id (a file without one is no task).
    pub id: String,
    pub(crate) title: Option<String>,
    pub(crate) status: Picked<TaskStatus>,
    pub(crate) priority: Picked<Priority>,
    pub(crate) assigned_to: Option<String>,
    pub(crate) dependencies: Vec<String>,
    pub(crate) timeout: Option<u64>,
    pub(crate) created_at: Option<OffsetDateTime>,
    pub(crate) started_at: Option<OffsetDateTime>,
    pub(crate) completed_at: Option<OffsetDateTime>,
}

/// Read a task file. Required: `task_id`, `title`, `status`, `priority`.
pub fn read_task(cx: &mut FileCtx<'_>) -> Option<Task> {
    let raw: RawTask<'_> = cx.document()?;
    let id = cx.id("task_id", raw.task_id, true);
    let title = cx.string("title", raw.title, true);
    cx.check_string("description", raw.description);
    let status = cx.choice("status", raw.status, true);
    let priority = cx.choice("priority", raw.priority, true);
    let assigned_to = cx.string("assigned_to", raw.assigned_to, false);
    let dependencies = cx.strings("dependencies", raw.dependencies);
    let timeout = cx.seconds("timeout", raw.timeout, false);
    let created_at = cx.time("created_at", raw.created_at, false);
    let started_at = cx.time("started_at", raw.started_at, false);
    let completed_at = cx.time("completed_at", raw.completed_at, false);
    Some(Task {
        file: cx.file.to_string(),
        path: cx.path.to_path_buf(),
        id: id?,
        title,
        status,
        priority,
        assigned_to,
        dependencies,
        timeout,
        created_at,
        started_at,
        completed_at,
    })
}

/// Parse a JSON document owned by the caller into an owned value (for files cellscan rewrites).
pub(crate) fn parse_owned<T: DeserializeOwned>(bytes: &[u8], path: &Path) -> crate::Result<T> {
    crate::ndjson::parse_json_doc(bytes, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(text: &str) -> (Option<Agent>, Vec<Issue>) {
        let mut issues = Vec::new();
        let path = Path::new("cell/agents/a.json");
        let a = read_agent(&mut FileCtx::new(path, "agents/a.json", text.as_bytes(), &mut issues));
        (a, issues)
    }

    #[test]
    fn a_valid_agent_has_no_issues() {
        let (a, issues) = agent(
            r#"{"agent_id":"a1","name":"A","role":"lead","capabilities":["x"],"gateway":"g","status":"active",
               "current_task":"t1","checkpoint":{"last_checkpoint":"2026-11-23T10:00:00Z","context_hash":"h"}}"#,
        );
        assert_eq!(issues, vec![]);
        let a = a.unwrap();
        assert_eq!((a.id.as_str(), a.role.value, a.status.value), ("a1", Some(Role::Lead), Some(AgentStatus::Active)));
        assert_eq!(a.heartbeat_id, "a1");
        assert!(a.last_checkpoint.is_some());
    }

    #[test]
    fn every_field_problem_is_reported_with_its_place() {
        let (a, issues) =
            agent("{\n  \"agent_id\": \"a1\",\n  \"role\": \"boss\",\n  \"status\": 3,\n  \"checkpoint\": {}\n}");
        assert!(a.is_some(), "the agent is still read");
        let got: Vec<(&str, &str)> = issues.iter().map(|i| (i.problem, i.detail.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (
                    "bad_value",
                    "cell/agents/a.json:3:11: role: unknown role 'boss' (expected lead, write, read or audit)"
                ),
                ("bad_value", "cell/agents/a.json:4:13: status: expected a string, found a number"),
                ("missing_field", "cell/agents/a.json: missing required field 'checkpoint.last_checkpoint'"),
            ]
        );
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let (a, issues) = agent("{\n  \"agent_id\": \"a1\",\n}\n");
        assert!(a.is_none());
        assert_eq!(issues[0].problem, "invalid_json");
        assert_eq!(issues[0].detail, "cell/agents/a.json:3:1: trailing comma");
        let (_, issues) = agent("[1]");
        assert_eq!(
            (issues[0].problem, issues[0].detail.as_str()),
            ("bad_value", "cell/agents/a.json: expected a JSON object")
        );
    }

    #[test]
    fn escaped_strings_and_unsafe_ids() {
        let (a, issues) = agent(r#"{"agent_id":"a\u0031","role":"read","status":"idle","name":"caf\u00e9"}"#);
        assert_eq!(issues, vec![]);
        assert_eq!(a.unwrap().name.as_deref(), Some("café"));
        let (a, issues) = agent(r#"{"agent_id":"../etc","role":"read","status":"idle"}"#);
        assert!(a.is_none());
        assert!(issues[0].detail.contains("'../etc' is not a usable id"), "{issues:?}");
    }

    #[test]
    fn tasks_require_their_fields() {
        let mut issues = Vec::new();
        let t = read_task(&mut FileCtx::new(
            Path::new("t.json"),
            "tasks/t.json",
            br#"{"task_id":"t1","status":"in_progress","priority":"urgent","timeout":-5,"dependencies":"t0"}"#,
            &mut issues,
        ))
        .unwrap();
        assert_eq!(t.status.value, Some(TaskStatus::InProgress));
        let problems: Vec<&str> = issues.iter().map(|i| i.problem).collect();
        assert_eq!(problems, vec!["missing_field", "bad_value", "bad_value", "bad_value"]);
        assert!(issues[1].detail.contains("unknown priority 'urgent' (expected high, medium or low)"));
    }

    #[test]
    fn policies_take_a_command_string_or_list() {
        let mut issues = Vec::new();
        let p = read_policies(&mut FileCtx::new(
            Path::new("p.json"),
            "config/policies.json",
            br#"{"auto_revive":"yes","revive_command":["bin/revive","--fast"],"max_retries":5,"revive_timeout":60}"#,
            &mut issues,
        ));
        assert_eq!(issues, vec![]);
        assert_eq!(p.auto_revive, Some(AutoRevive::Yes));
        assert_eq!(p.revive_command, Some(CommandLine::Argv(vec!["bin/revive".into(), "--fast".into()])));
        assert_eq!((p.max_retries, p.revive_timeout, p.cooldown_seconds), (5, 60, 300));
    }

    #[test]
    fn numbers_past_any_double_are_said_to_be_out_of_range() {
        let mut issues = Vec::new();
        let c = read_cell(&mut FileCtx::new(
            Path::new("c.json"),
            "cell.json",
            br#"{"cell_id":"c","mission_name":"m","status":"active","isolation_level":"level_1","max_agents":1e400,"timeout":18446744073709551616}"#,
            &mut issues,
        ))
        .unwrap();
        let details: Vec<&str> = issues.iter().map(|i| i.detail.as_str()).collect();
        assert_eq!(details, vec!["c.json:1:94: max_agents: 1e400 is out of range"]);
        assert_eq!((c.max_agents, c.timeout), (None, Some(u64::MAX)));
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_col(b"ab\ncd", 0), (1, 1));
        assert_eq!(line_col(b"ab\ncd", 4), (2, 2));
    }
}
