//! Who may ask for which type, and how many (RFC 8653 §3.4: the host decides what to serve).

use crate::{AddressType, Error, Result};

/// One rule: for the applications it names, which types are allowed and at most how many
/// leases of each type may be live at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    /// The application name this rule is for; "*" matches every application.
    pub app: String,
    /// Allowed types; `None` allows all four.
    pub allow: Option<Vec<AddressType>>,
    /// Per type (index = value - 1): the most leases the application may hold at once.
    pub quotas: [Option<u32>; 4],
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// The type legacy requests (type `unspecified`) get; `None` keeps legacy behaviour:
    /// no on-demand request is made (§4.2).
    pub default_type: Option<AddressType>,
    /// Checked in order; the first rule whose `app` matches applies. No match: all allowed.
    pub rules: Vec<Rule>,
}

impl Policy {
    /// The type a request for `requested` is served as; `None` for a legacy request.
    pub fn effective_type(&self, requested: AddressType) -> Option<AddressType> {
        match requested {
            AddressType::Unspecified => self.default_type,
            t => Some(t),
        }
    }

    /// May `app`, holding `live` leases of type `t`, take one more?
    pub fn check(&self, app: &str, t: AddressType, live: u32) -> Result<()> {
        let Some(rule) = self.rules.iter().find(|r| r.app == "*" || r.app == app) else {
            return Ok(());
        };
        if rule
            .allow
            .as_ref()
            .is_some_and(|allowed| !allowed.contains(&t))
        {
            return Err(Error::NotAuthorized(format!(
                "policy does not allow {app:?} {t} addresses"
            )));
        }
        if let Some(max) = t.slot().and_then(|i| rule.quotas[i])
            && live >= max
        {
            return Err(Error::QuotaExceeded(format!(
                "{app:?} may hold at most {max} {t} leases"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AddressType::*;

    fn policy() -> Policy {
        Policy {
            default_type: Some(SessionLasting),
            rules: vec![
                Rule {
                    app: "browser".into(),
                    allow: Some(vec![SessionLasting, Nonpersistent]),
                    ..Rule::default()
                },
                Rule {
                    app: "*".into(),
                    allow: None,
                    quotas: [Some(2), None, None, None],
                },
            ],
        }
    }

    #[test]
    fn rfc8653_s3_4_policy_refuses_a_type_the_app_is_not_allowed() {
        let p = policy();
        assert_eq!(
            p.check("browser", Fixed, 0).unwrap_err().errno(),
            libc::EACCES
        );
        assert!(p.check("browser", Nonpersistent, 1000).is_ok());
    }

    #[test]
    fn rfc8653_s3_4_quota_refuses_past_the_limit() {
        let p = policy();
        assert!(p.check("server", Fixed, 1).is_ok());
        assert_eq!(
            p.check("server", Fixed, 2).unwrap_err().errno(),
            libc::EDQUOT
        );
    }

    #[test]
    fn rfc8653_s4_2_legacy_requests_get_the_default_type_or_none() {
        assert_eq!(policy().effective_type(Unspecified), Some(SessionLasting));
        assert_eq!(Policy::default().effective_type(Unspecified), None);
        assert_eq!(Policy::default().effective_type(Fixed), Some(Fixed));
    }
}
