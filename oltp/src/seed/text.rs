//! Real-sounding text from templates and word lists: support tickets and their messages (tone follows
//! the customer's mood, so sentiment models have something to learn), knowledge-base articles,
//! documents, e-mails, call notes and task subjects.

use rand::Rng;

use super::rng::{pick, stream};
use crate::model::SentimentLabel;

/// A customer's mood, from their account's health; drives the phrasing of tickets and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Mood {
    Positive,
    Neutral,
    Negative,
    Angry,
}

impl Mood {
    /// The sentiment label a mood plants in the text (angry and negative are both negative).
    pub(crate) fn label(self) -> SentimentLabel {
        match self {
            Mood::Positive => SentimentLabel::Positive,
            Mood::Neutral => SentimentLabel::Neutral,
            Mood::Negative | Mood::Angry => SentimentLabel::Negative,
        }
    }
}

/// Product areas: (ticket category, component as written in prose).
pub(crate) const AREAS: &[(&str, &str)] = &[
    ("integrations", "the Salesforce integration"),
    ("reporting", "the reporting module"),
    ("authentication", "single sign-on"),
    ("data_import", "the CSV importer"),
    ("billing", "billing and invoices"),
    ("performance", "the pipeline board"),
    ("mobile", "the mobile app"),
    ("api", "the REST API"),
    ("email_sync", "e-mail sync"),
    ("permissions", "sharing and permissions"),
];

const SYMPTOMS: &[&str] = &[
    "sync jobs keep failing overnight",
    "dashboards take more than a minute to load",
    "users end up in a login loop",
    "the import rejects rows without telling us why",
    "the latest invoice shows the wrong number of seats",
    "the page times out when we filter by owner",
    "push notifications stopped arriving",
    "requests are rejected with HTTP 429",
    "meetings are not showing up on the calendar",
    "shared reports are invisible to some team members",
    "exports are missing the custom fields",
    "duplicate contacts are created after every sync",
];

const OPENINGS: [&[&str]; 4] = [
    &[
        "Hi team, hope you are well!",
        "Hello, quick one for you.",
        "Hi there, first of all thanks for the great product.",
    ],
    &["Hello,", "Hi support team,", "Good morning,"],
    &["Hi,", "Hello support,", "We have a problem again."],
    &["This needs attention immediately.", "I am writing to escalate an issue.", "Once again we are blocked."],
];

const IMPACTS: [&[&str]; 4] = [
    &[
        "Not urgent at all, the team can work around it.",
        "Everything else is working great, the team loves the new forecasting view.",
        "We are really happy with the rollout so far.",
    ],
    &[
        "A few users on our side are affected.",
        "It happens for roughly a third of the records.",
        "Steps to reproduce are below.",
    ],
    &[
        "This is slowing down our sales team considerably.",
        "It is the second time this quarter that this happens.",
        "Our managers cannot trust the numbers right now.",
    ],
    &[
        "This is the third outage this month.",
        "We are seriously considering alternatives if this is not fixed.",
        "Frankly this is unacceptable for what we pay.",
        "We escalated this twice already and nobody followed up.",
        "Our renewal is coming up and this is weighing heavily on the decision.",
        "The team has lost confidence in the platform.",
    ],
];

const CLOSINGS: [&[&str]; 4] = [
    &["Thanks so much!", "Cheers, and keep up the good work.", "Thanks in advance!"],
    &["Thanks,", "Best regards,", "Could you take a look when you have a moment?"],
    &["Please advise as soon as possible.", "We need an update today.", "Please prioritise this."],
    &["I expect a call from your side today.", "Please escalate to your management.", "Fix this now."],
];

fn mood_ix(m: Mood) -> usize {
    m as usize
}

/// (category, subject, description) of a new ticket.
pub(crate) fn ticket(rng: &mut impl Rng, mood: Mood, who: &str) -> (&'static str, String, String) {
    let (category, component) = pick(rng, AREAS);
    let symptom = pick(rng, SYMPTOMS);
    let subject = match mood {
        Mood::Angry => format!("URGENT: {} ({component})", capitalize(symptom)),
        Mood::Negative => format!("{} again", capitalize(symptom)),
        Mood::Neutral => format!("Issue with {component}: {symptom}"),
        Mood::Positive => format!("Question about {component}"),
    };
    let m = mood_ix(mood);
    let description = format!(
        "{} In {component}, {symptom}. {} {}\n{who}",
        pick(rng, OPENINGS[m]),
        pick(rng, IMPACTS[m]),
        pick(rng, CLOSINGS[m]),
    );
    (category, subject, description)
}

/// A support agent's reply.
pub(crate) fn agent_reply(rng: &mut impl Rng, customer_first: &str, agent: &str, resolved: bool) -> String {
    let body = if resolved {
        pick(
            rng,
            &[
                "We deployed a fix this morning; could you confirm that it works on your side?",
                "The root cause was a misconfigured mapping, which we corrected. Everything should be back to normal.",
                "This is resolved in release 24.3. I will close the ticket, but reply anytime if it comes back.",
            ],
        )
    } else {
        pick(
            rng,
            &[
                "Thanks for reporting this. I have reproduced it and passed it to our engineers.",
                "Sorry for the trouble. Could you send us the time of the last failure and an example record?",
                "I understand the urgency. I have raised the priority and will update you within the day.",
            ],
        )
    };
    format!("Hi {customer_first},\n\n{body}\n\nBest,\n{agent}")
}

/// A customer's follow-up message in the given mood.
pub(crate) fn customer_followup(rng: &mut impl Rng, mood: Mood) -> String {
    let options: &[&str] = match mood {
        Mood::Positive => &["That fixed it, thank you for the quick help!", "Works perfectly now, much appreciated."],
        Mood::Neutral => &["Thanks, we will test it and let you know.", "Attached is the example you asked for."],
        Mood::Negative => &["Still seeing the issue this morning.", "This took far too long to get a response."],
        Mood::Angry => &[
            "Still broken. This is the third outage this month and we are considering alternatives.",
            "No update for two days. We are evaluating other vendors and will raise this at the renewal.",
        ],
    };
    (pick(rng, options)).to_owned()
}

pub(crate) fn internal_note(rng: &mut impl Rng, n: u32) -> String {
    let options = [
        format!("Reproduced on staging; linked to engineering issue ENG-{n}."),
        format!("Customer is on an old connector version; see ENG-{n}. Flagged to the account owner."),
        format!("Escalated to tier 2. Possible duplicate of ENG-{n}."),
    ];
    options[rng.random_range(0..options.len())].clone()
}

/// (title, slug stem, category, body) of a knowledge-base article.
pub(crate) fn kb_article(rng: &mut impl Rng, brand: &str) -> (String, String, &'static str, String) {
    let (category, component) = pick(rng, AREAS);
    let symptom = pick(rng, SYMPTOMS);
    let troubleshoot = rng.random_bool(0.5);
    let title = if troubleshoot {
        format!("Troubleshooting: {symptom}")
    } else {
        format!("Getting started with {component} in {brand}")
    };
    let body = format!(
        "## Overview\n\nThis article explains {} for {component}.\n\n## Steps\n\n1. Open Settings and select {}.\n\
         2. Check that the connection status is green and the last sync time is recent.\n\
         3. {}\n\n## Still stuck?\n\nContact support with the time of the problem and an example record.",
        if troubleshoot { "what to do when ".to_owned() + symptom } else { "how to set up and use".to_owned() },
        capitalize(category).replace('_', " "),
        pick(
            rng,
            &[
                "Re-authorise the integration user and run a manual sync.",
                "Clear the browser cache and sign in again through your identity provider.",
                "Reduce the batch size to 500 rows and retry the import.",
                "Ask an administrator to review the sharing rules for the affected team.",
            ]
        ),
    );
    (title.clone(), super::words::slugify(&title), category, body)
}

/// Body of a document version (proposal, contract, account plan).
pub(crate) fn document_body(rng: &mut impl Rng, kind: &str, account: &str, brand: &str, version: i64) -> String {
    let intro = match kind {
        "proposal" => format!(
            "Proposal for {account}\n\nExecutive summary\n\n{brand} will help {account} \
            consolidate pipeline, forecasting and customer health in one place."
        ),
        "contract" => format!(
            "Master Subscription Agreement between {brand} and {account}\n\n1. Subscription. \
            The customer subscribes to the services in the order form for the subscription term."
        ),
        _ => format!("Account plan: {account}\n\nGoals for the next two quarters and the people involved."),
    };
    let extras = [
        "Pricing is per seat and billed in advance; volume discounts apply from 100 seats.",
        "Implementation takes four to six weeks, including data migration and training.",
        "Success criteria: forecast accuracy within 10% and adoption above 80% of licensed seats.",
        "Either party may terminate for material breach with 30 days written notice.",
        "Support is available 24/7 for urgent issues with a one-hour first response target.",
        "Key risks: data quality of the legacy CRM and availability of the admin team.",
    ];
    let mut body = intro;
    for _ in 0..2 + version {
        body.push_str("\n\n");
        body.push_str(pick(rng, &extras));
    }
    body.push_str(&format!("\n\nRevision {version}."));
    body
}

/// Subject of a sales e-mail, call, meeting or note.
pub(crate) fn activity_subject(rng: &mut impl Rng, kind: &str, topic: &str) -> String {
    let topics: &[&str] = &[
        "pricing",
        "the security review",
        "next steps",
        "the rollout plan",
        "contract terms",
        "the pilot results",
        "the technical evaluation",
        "renewal timing",
        "seat count",
        "onboarding",
    ];
    let t = pick(rng, topics);
    match kind {
        "email" => format!("Re: {topic} — {t}"),
        "call" => format!("Call about {t} ({topic})"),
        "meeting" => format!("{} — {topic}", capitalize(pick(rng, &["demo", "workshop", "review", "kick-off"]))),
        "web_visit" => format!("Visited /{}", pick(rng, &["pricing", "product/forecasting", "customers", "security"])),
        "chat" => format!("Website chat about {t}"),
        _ => format!("Note: {t}"),
    }
}

/// Body of an interaction; warmer when the deal or lead is going well.
pub(crate) fn activity_body(rng: &mut impl Rng, kind: &str, going_well: bool) -> Option<String> {
    labelled_activity_body(rng, kind, going_well).map(|(_, body)| body.to_owned())
}

/// [`activity_body`] with the tone of the list it came from (the same draws from `rng`).
fn labelled_activity_body(rng: &mut impl Rng, kind: &str, going_well: bool) -> Option<(SentimentLabel, &'static str)> {
    if kind == "web_visit" {
        return None;
    }
    let good = [
        "Strong interest; they want a proposal by the end of the month.",
        "Champion confirmed budget and introduced us to the economic buyer.",
        "Technical evaluation went well, no blockers found.",
        "They asked for references from similar companies.",
    ];
    let bad = [
        "No reply to the last two e-mails.",
        "They are evaluating a competitor and went quiet.",
        "Budget was frozen until next fiscal year.",
        "Our contact is leaving the company; need a new champion.",
    ];
    let neutral = ["Shared the deck and pricing sheet.", "Scheduled a follow-up with the wider team."];
    let (label, list): (SentimentLabel, &[&'static str]) = if rng.random_bool(0.3) {
        (SentimentLabel::Neutral, &neutral)
    } else if going_well {
        (SentimentLabel::Positive, &good)
    } else {
        (SentimentLabel::Negative, &bad)
    };
    Some((label, pick(rng, list)))
}

/// The text of a ticket as sentiment is scored on it: subject, a line break, description.
pub fn ticket_text(subject: &str, description: &str) -> String {
    format!("{subject}\n{description}")
}

/// `n` ticket texts written by [`ticket`] — the generator's own code path — with the label their mood
/// plants, a third of each label (negative alternates the negative and angry moods).
pub(crate) fn labelled_tickets(seed: u64, n: usize) -> Vec<(SentimentLabel, String)> {
    let mut rng = stream(seed, &[], "sentiment:tickets");
    let moods = [Mood::Positive, Mood::Neutral, Mood::Negative, Mood::Positive, Mood::Neutral, Mood::Angry];
    (0..n)
        .map(|i| {
            let mood = moods[i % moods.len()];
            let who = pick(&mut rng, super::words::FIRST_NAMES);
            let (_, subject, description) = ticket(&mut rng, mood, who);
            (mood.label(), ticket_text(&subject, &description))
        })
        .collect()
}

/// `n` interaction bodies written by [`activity_body`]'s code path with the tone of the list they were
/// drawn from (the deal going well or not; about 30 % neutral).
pub(crate) fn labelled_interactions(seed: u64, n: usize) -> Vec<(SentimentLabel, String)> {
    let mut rng = stream(seed, &[], "sentiment:interactions");
    let kinds = ["email", "call", "meeting", "note", "chat"];
    (0..n)
        .filter_map(|i| labelled_activity_body(&mut rng, kinds[i % kinds.len()], i % 2 == 0))
        .map(|(label, body)| (label, body.to_owned()))
        .collect()
}

/// The label the generator planted in a ticket, read back from its subject line: each mood writes its
/// own subject template (see [`ticket`]). `None` for a subject the generator did not write.
pub fn planted_ticket_label(subject: &str) -> Option<SentimentLabel> {
    let mood = if subject.starts_with("URGENT: ") {
        Mood::Angry
    } else if subject.starts_with("Question about ") {
        Mood::Positive
    } else if subject.starts_with("Issue with ") {
        Mood::Neutral
    } else if subject.ends_with(" again") {
        Mood::Negative
    } else {
        return None;
    };
    Some(mood.label())
}

pub(crate) fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::rng::stream;

    #[test]
    fn angry_tickets_read_negative() {
        let mut rng = stream(1, &[], "t");
        let hits = (0..200)
            .filter(|_| {
                let (_, s, d) = ticket(&mut rng, Mood::Angry, "Ann");
                s.starts_with("URGENT") && !d.contains("loves")
            })
            .count();
        assert_eq!(hits, 200);
        let (_, _, happy) = ticket(&mut rng, Mood::Positive, "Ann");
        assert!(!happy.contains("alternatives"));
    }

    #[test]
    fn planted_labels_round_trip_through_the_subject() {
        let mut rng = stream(3, &[], "t");
        for mood in [Mood::Positive, Mood::Neutral, Mood::Negative, Mood::Angry] {
            for _ in 0..50 {
                let (_, subject, _) = ticket(&mut rng, mood, "Ann");
                assert_eq!(planted_ticket_label(&subject), Some(mood.label()), "{subject}");
            }
        }
        assert_eq!(planted_ticket_label("Can we add ten seats?"), None);
        let tickets = labelled_tickets(5, 300);
        for label in SentimentLabel::ALL {
            assert_eq!(tickets.iter().filter(|(l, _)| l == label).count(), 100, "{label}");
        }
        assert!(tickets.iter().all(|(l, t)| planted_ticket_label(t.lines().next().unwrap_or("")) == Some(*l)));
        assert_eq!(labelled_tickets(5, 300), tickets, "deterministic");
        let interactions = labelled_interactions(5, 300);
        assert_eq!(interactions.len(), 300);
        assert!(SentimentLabel::ALL.iter().all(|l| interactions.iter().any(|(x, _)| x == l)));
    }

    #[test]
    fn kb_slugs_are_valid() {
        let mut rng = stream(2, &[], "t");
        for _ in 0..50 {
            let (_, slug, _, _) = kb_article(&mut rng, "Bluepeak");
            assert!(slug.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{slug}");
            assert!(!slug.starts_with('-'));
        }
    }
}
