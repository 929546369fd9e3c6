//! The per-service `quorum` of services.json: how many places must see a service down for it
//! to count as down (notify's alerts, rollup's uptime by quorum).

use std::collections::HashMap;

use super::Config;
use crate::error::{Error, Result};

impl Config {
    /// Each service's `"quorum": K` (a whole number of places, 1 or more), by name. A value
    /// that is not one is an error naming `file:line`, the service and the field.
    pub fn quorums(&self) -> Result<HashMap<String, usize>> {
        let mut per_service = HashMap::new();
        for s in &self.services {
            let Some(v) = s.raw.get("quorum") else { continue };
            match v.as_u64().filter(|k| *k >= 1).and_then(|k| usize::try_from(k).ok()) {
                Some(k) => per_service.insert(s.name.clone(), k),
                None => {
                    return Err(Error::config(format!(
                        "{}:{}: service '{}': quorum: {v} is not a number of hosts (1 or more)",
                        self.path.display(),
                        s.line,
                        s.name
                    )));
                }
            };
        }
        Ok(per_service)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::env_from;

    fn parse(doc: &str) -> Config {
        Config::parse(doc.as_bytes(), Path::new("services.json"), &env_from(&[])).unwrap()
    }

    #[test]
    fn per_service_quorums_and_a_bad_one_named() {
        let c = parse(
            r#"{"services":[
  {"name":"web","type":"tcp","target":"h","port":1,"quorum":2},
  {"name":"db","type":"tcp","target":"h","port":2}
]}"#,
        );
        assert_eq!(c.quorums().unwrap(), HashMap::from([("web".to_string(), 2)]));
        let c = parse(
            r#"{"services":[
  {"name":"web","type":"tcp","target":"h","port":1,"quorum":0}]}"#,
        );
        let e = c.quorums().unwrap_err().to_string();
        assert!(e.contains("services.json:2: service 'web': quorum: 0 is not a number of hosts (1 or more)"), "{e}");
        let c = parse(r#"{"services":[{"name":"web","type":"tcp","target":"h","port":1,"quorum":"two"}]}"#);
        assert!(c.quorums().unwrap_err().to_string().contains("quorum: \"two\" is not a number"));
    }
}
