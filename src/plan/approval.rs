//! Which private-link connection on a stamp's Private Link Service is Front Door's, and what to
//! decide about each.
//!
//! Anyone who knows a Private Link Service's alias or id may request a connection to it, from
//! any tenant, with any request message ("Anyone with the alias can request a connection";
//! Microsoft Learn, Private Link service, "Alias"). So the message Front Door sends is a secret
//! per stamp that cannot be derived from names (see `new_request_message`), at most one
//! connection is ever approved per stamp, and once identified the approved connection is known
//! by its name: a person's manual approval (which replaces the description) still counts, and a
//! second request carrying the message — someone who learnt it — is never approved but reported.

/// One private-endpoint connection on a Private Link Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Its ARM id (the approval is a PUT to it).
    pub id: String,
    /// Its name.
    pub name: String,
    /// `Pending`, `Approved`, `Rejected` or `Disconnected`.
    pub state: String,
    /// `privateLinkServiceConnectionState.description`: the requester's message while Pending,
    /// whatever the approver wrote afterwards.
    pub description: String,
}

/// What the stamp's approval policy allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalPolicy {
    /// Approve Front Door's connection (`ApproveMatching`); `false`: a person does (`Manual`).
    pub approve: bool,
    /// Reject connections that are not Front Door's. Only on a Private Link Service the
    /// operator created: on an adopted one, other teams' connections are theirs to judge.
    pub reject_others: bool,
    /// The Private Link Service is the operator's own: any other connection found approved
    /// there (someone with write access approved it) is a private path around Front Door and
    /// its WAF, reported — and turned back when `reject_others`.
    pub guards_others: bool,
}

/// A decision to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Approve the connection with this id.
    Approve(String),
    /// Reject the connection with this id.
    Reject(String),
}

/// What the connections on a stamp's Private Link Service come to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assessment {
    /// Front Door's connection, when one is identified.
    pub ours: Option<Connection>,
    /// What to write.
    pub decisions: Vec<Decision>,
    /// Names of connections that carry the stamp's secret message but are not (or cannot be
    /// told to be) Front Door's: someone else learnt the message.
    pub impostors: Vec<String>,
    /// Names of connections other than Front Door's found approved on a guarded service (see
    /// `ApprovalPolicy::guards_others`).
    pub intruders: Vec<String>,
}

/// The description the operator writes when it approves or rejects: it names the owner, never
/// the secret message.
pub fn decision_note(decision: &str, owner: &str) -> String {
    format!("{decision} by stamp-operator for {owner}")
}

/// The prefix of every request message this operator generates.
pub const REQUEST_MESSAGE_PREFIX: &str = "stamp-operator/";

/// Whether `message` is one this operator generated (rather than a name-derived one older
/// versions wrote, or a user's).
pub fn is_generated_message(message: &str) -> bool {
    message
        .strip_prefix(REQUEST_MESSAGE_PREFIX)
        .is_some_and(|secret| secret.len() == 32 && secret.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A request message from `secret` (128 random bits as 32 hex digits): well under the 140
/// characters Azure allows a private endpoint's request message (privateEndpoint.json,
/// `PrivateLinkServiceConnectionProperties.requestMessage`).
pub fn request_message(secret: &str) -> String {
    format!("{REQUEST_MESSAGE_PREFIX}{secret}")
}

/// Decides about `connections`. `message` is the stamp's secret request message, `remembered`
/// the name of the connection an earlier pass identified as Front Door's, `owner` the stamp
/// (see `decision_note`).
pub fn assess(
    connections: &[Connection],
    message: &str,
    remembered: Option<&str>,
    owner: &str,
    policy: ApprovalPolicy,
) -> Assessment {
    // A Disconnected or Rejected connection is a leftover (its private endpoint gone, or turned
    // away): it never decides the state.
    let live = |c: &&Connection| c.state == "Pending" || c.state == "Approved";
    let carries_message = |c: &&Connection| c.state == "Pending" && c.description == message;
    let approved_note = decision_note("Approved", owner);
    let ours = connections
        .iter()
        .filter(live)
        .find(|c| remembered == Some(c.name.as_str()))
        .or_else(|| {
            // Status was lost: what this operator approved says so in its description.
            connections
                .iter()
                .find(|c| c.state == "Approved" && c.description == approved_note)
        })
        .cloned();
    let mut out = Assessment::default();
    let ours = match ours {
        Some(ours) => ours,
        None => {
            let candidates: Vec<&Connection> = connections.iter().filter(carries_message).collect();
            match candidates.as_slice() {
                [one] => (*one).clone(),
                none_or_many => {
                    // Two requests with the message: which is Front Door's cannot be told, so
                    // neither is approved.
                    out.impostors = none_or_many.iter().map(|c| c.name.clone()).collect();
                    out.decisions = rejections(connections, policy, |c| !carries_message(&c));
                    return out;
                }
            }
        }
    };
    if ours.state == "Pending" && policy.approve {
        out.decisions.push(Decision::Approve(ours.id.clone()));
    }
    out.impostors = connections
        .iter()
        .filter(carries_message)
        .filter(|c| c.name != ours.name)
        .map(|c| c.name.clone())
        .collect();
    out.decisions
        .extend(rejections(connections, policy, |c| c.name != ours.name));
    // Only once Front Door's is known can another approved one be told apart from it.
    if policy.guards_others {
        let intruders: Vec<&Connection> = connections
            .iter()
            .filter(|c| c.state == "Approved" && c.name != ours.name)
            .collect();
        out.intruders = intruders.iter().map(|c| c.name.clone()).collect();
        if policy.reject_others {
            out.decisions
                .extend(intruders.iter().map(|c| Decision::Reject(c.id.clone())));
        }
    }
    out.ours = Some(ours);
    out
}

/// Rejections of the Pending connections `others` picks, when the policy rejects.
fn rejections(
    connections: &[Connection],
    policy: ApprovalPolicy,
    others: impl Fn(&Connection) -> bool,
) -> Vec<Decision> {
    if !policy.reject_others {
        return Vec::new();
    }
    connections
        .iter()
        .filter(|c| c.state == "Pending" && others(c))
        .map(|c| Decision::Reject(c.id.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = "stamp-operator/0123456789abcdef0123456789abcdef";
    const OWNER: &str = "Stamp/prod/weu-blue";
    const APPROVE: ApprovalPolicy = ApprovalPolicy {
        approve: true,
        reject_others: true,
        guards_others: true,
    };

    fn conn(name: &str, state: &str, description: &str) -> Connection {
        Connection {
            id: format!("/pls/privateEndpointConnections/{name}"),
            name: name.into(),
            state: state.into(),
            description: description.into(),
        }
    }

    #[test]
    fn the_one_request_with_the_secret_is_approved_and_the_rest_rejected() {
        let connections = [
            conn("fd", "Pending", MESSAGE),
            conn("stranger", "Pending", "let me in"),
        ];
        let a = assess(&connections, MESSAGE, None, OWNER, APPROVE);
        assert_eq!(a.ours.unwrap().name, "fd");
        assert_eq!(
            a.decisions,
            [
                Decision::Approve(connections[0].id.clone()),
                Decision::Reject(connections[1].id.clone())
            ]
        );
        assert!(a.impostors.is_empty());
    }

    #[test]
    fn two_requests_with_the_secret_are_neither_approved_and_both_reported() {
        let connections = [conn("a", "Pending", MESSAGE), conn("b", "Pending", MESSAGE)];
        let a = assess(&connections, MESSAGE, None, OWNER, APPROVE);
        assert_eq!(a.ours, None);
        assert!(a.decisions.is_empty(), "{:?}", a.decisions);
        assert_eq!(a.impostors, ["a", "b"]);
    }

    #[test]
    fn once_one_is_approved_a_later_request_with_the_secret_is_not() {
        let connections = [
            conn("fd", "Approved", "approved by a person"),
            conn("copycat", "Pending", MESSAGE),
        ];
        let a = assess(&connections, MESSAGE, Some("fd"), OWNER, APPROVE);
        assert_eq!(a.ours.unwrap().state, "Approved");
        assert_eq!(a.impostors, ["copycat"]);
        assert_eq!(a.decisions, [Decision::Reject(connections[1].id.clone())]);
        // Status lost: our own note still tells which one we approved.
        let noted = [
            conn("fd", "Approved", &decision_note("Approved", OWNER)),
            conn("copycat", "Pending", MESSAGE),
        ];
        let a = assess(&noted, MESSAGE, None, OWNER, APPROVE);
        assert_eq!(a.ours.unwrap().name, "fd");
        assert_eq!(a.impostors, ["copycat"]);
    }

    #[test]
    fn a_guessable_or_copied_old_message_is_not_approved() {
        let old = "missioncritical.dev/globalplane=prod stamp=prod/weu-blue";
        let connections = [conn("stranger", "Pending", old)];
        let a = assess(&connections, MESSAGE, None, OWNER, APPROVE);
        assert_eq!(a.ours, None);
        assert_eq!(a.decisions, [Decision::Reject(connections[0].id.clone())]);
    }

    #[test]
    fn a_manual_approval_with_a_persons_words_counts_by_name() {
        let policy = ApprovalPolicy {
            approve: false,
            ..APPROVE
        };
        let pending = [conn("fd", "Pending", MESSAGE)];
        let a = assess(&pending, MESSAGE, None, OWNER, policy);
        assert_eq!(
            a.ours.as_ref().unwrap().name,
            "fd",
            "identified, to be remembered"
        );
        assert!(a.decisions.is_empty(), "Manual: a person approves");
        let approved = [conn("fd", "Approved", "ok - jane, change 4711")];
        let a = assess(&approved, MESSAGE, Some("fd"), OWNER, policy);
        assert_eq!(a.ours.unwrap().state, "Approved");
    }

    #[test]
    fn leftovers_never_decide_the_state() {
        let connections = [
            conn("old", "Disconnected", &decision_note("Approved", OWNER)),
            conn("fd", "Pending", MESSAGE),
        ];
        let a = assess(&connections, MESSAGE, Some("old"), OWNER, APPROVE);
        assert_eq!(a.ours.unwrap().name, "fd");
        assert_eq!(a.decisions, [Decision::Approve(connections[1].id.clone())]);
    }

    #[test]
    fn on_an_adopted_service_other_connections_are_left_alone() {
        let policy = ApprovalPolicy {
            approve: true,
            reject_others: false,
            guards_others: false,
        };
        let connections = [
            conn("fd", "Pending", MESSAGE),
            conn("other-team", "Pending", "hi"),
            conn("other-team-approved", "Approved", "theirs"),
        ];
        let a = assess(&connections, MESSAGE, None, OWNER, policy);
        assert_eq!(a.decisions, [Decision::Approve(connections[0].id.clone())]);
        assert!(a.intruders.is_empty());
    }

    #[test]
    fn a_connection_someone_else_approved_is_reported_and_turned_back() {
        let connections = [
            conn("fd", "Approved", &decision_note("Approved", OWNER)),
            conn("backdoor", "Approved", "approved by hand"),
        ];
        let a = assess(&connections, MESSAGE, Some("fd"), OWNER, APPROVE);
        assert_eq!(a.intruders, ["backdoor"]);
        assert_eq!(a.decisions, [Decision::Reject(connections[1].id.clone())]);
        // Reported, left as it is, when the policy leaves others alone.
        let ignore = ApprovalPolicy {
            reject_others: false,
            ..APPROVE
        };
        let a = assess(&connections, MESSAGE, Some("fd"), OWNER, ignore);
        assert_eq!(a.intruders, ["backdoor"]);
        assert!(a.decisions.is_empty());
        // Which is Front Door's cannot be told (status lost, a person's words): nothing is
        // turned back on a guess.
        let unknown = [
            conn("fd", "Approved", "ok - jane"),
            conn("backdoor", "Approved", "approved by hand"),
        ];
        let a = assess(&unknown, MESSAGE, None, OWNER, APPROVE);
        assert!(a.intruders.is_empty() && a.decisions.is_empty());
    }

    #[test]
    fn generated_messages_are_told_from_others() {
        assert!(is_generated_message(MESSAGE));
        assert!(!is_generated_message(
            "missioncritical.dev/globalplane=prod stamp=prod/x"
        ));
        assert!(!is_generated_message("stamp-operator/short"));
        assert!(request_message("0123456789abcdef0123456789abcdef").len() <= 140);
    }
}
