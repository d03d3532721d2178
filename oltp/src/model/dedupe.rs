//! Duplicate scoring, pure: normalisation of emails, phones, domains and names, and a score in 0..=1
//! per candidate with the reasons that made it. Evidence combines as a noisy-or — each signal alone
//! can make a candidate likely, and agreeing signals make it more so — so the score reads as "how
//! sure are we these are the same".

use serde::Serialize;

/// What is known about a record for matching.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint {
    /// Person name (`first last`) or company name.
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Company web domain (accounts) — for people, derived from a work email.
    pub domain: Option<String>,
    /// The account a person belongs to.
    pub account: Option<uuid::Uuid>,
}

/// Why a candidate matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    SameEmail,
    SamePhone,
    SameDomain,
    SimilarName,
    SameAccount,
}

/// Candidates below this score are not reported.
pub const MIN_SCORE: f64 = 0.5;

const FREE_MAIL: &[&str] =
    &["gmail.com", "googlemail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "gmx.de", "web.de"];
const LEGAL_SUFFIXES: &[&str] = &[
    "inc",
    "incorporated",
    "llc",
    "ltd",
    "limited",
    "gmbh",
    "ag",
    "sa",
    "sas",
    "bv",
    "nv",
    "plc",
    "corp",
    "corporation",
    "co",
    "company",
    "group",
    "holdings",
    "the",
];

/// Lower-cased, trimmed; for Gmail, dots and `+tags` in the local part do not matter.
pub fn normalise_email(email: &str) -> Option<String> {
    let e = email.trim().to_lowercase();
    let (local, domain) = e.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() {
        return None;
    }
    let local = local.split('+').next().unwrap_or(local);
    let local =
        if matches!(domain, "gmail.com" | "googlemail.com") { local.replace('.', "") } else { local.to_owned() };
    Some(format!("{local}@{domain}"))
}

/// The last 9 digits (national number without trunk or country prefix); `None` when too short.
pub fn normalise_phone(phone: &str) -> Option<String> {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    (digits.len() >= 7).then(|| digits[digits.len().saturating_sub(9)..].to_owned())
}

/// A bare host: no scheme, path, `www.` or trailing dot.
pub fn normalise_domain(domain: &str) -> Option<String> {
    let d = domain.trim().to_lowercase();
    let d = d.split("://").last().unwrap_or(&d);
    let d = d.split(['/', '?', '#']).next().unwrap_or(d).trim_end_matches('.');
    let d = d.strip_prefix("www.").unwrap_or(d);
    (d.contains('.') && !d.starts_with('.')).then(|| d.to_owned())
}

/// The company domain of a work email (none for free-mail providers).
pub fn email_domain(email: &str) -> Option<String> {
    let d = normalise_email(email)?.rsplit_once('@')?.1.to_owned();
    (!FREE_MAIL.contains(&d.as_str())).then_some(d)
}

/// Lower-case words, punctuation dropped, legal suffixes removed, accents folded for common Latin ones.
pub fn normalise_name(name: &str) -> String {
    let folded: String = name
        .to_lowercase()
        .chars()
        // "S.A." is one word.
        .filter(|c| *c != '.')
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ø' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            'ñ' => 'n',
            c if c.is_alphanumeric() => c,
            _ => ' ',
        })
        .collect();
    folded.split_whitespace().filter(|w| !LEGAL_SUFFIXES.contains(w)).collect::<Vec<_>>().join(" ")
}

/// Name similarity in 0..=1: Jaro-Winkler on the normalised names, also trying the words in sorted
/// order so "Hopper Grace" matches "Grace Hopper".
pub fn name_similarity(a: &str, b: &str) -> f64 {
    let (a, b) = (normalise_name(a), normalise_name(b));
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let sorted = |s: &str| {
        let mut w: Vec<&str> = s.split(' ').collect();
        w.sort_unstable();
        w.join(" ")
    };
    strsim::jaro_winkler(&a, &b).max(strsim::jaro_winkler(&sorted(&a), &sorted(&b)))
}

/// How likely `candidate` is the same real-world record as `probe`, and why.
pub fn score(probe: &Fingerprint, candidate: &Fingerprint) -> (f64, Vec<Reason>) {
    let mut evidence: Vec<(Reason, f64)> = Vec::new();
    let same = |a: &Option<String>, b: &Option<String>| a.is_some() && a == b;
    if same(&probe.email, &candidate.email) {
        evidence.push((Reason::SameEmail, 0.9));
    }
    if same(&probe.phone, &candidate.phone) {
        evidence.push((Reason::SamePhone, 0.6));
    }
    if same(&probe.domain, &candidate.domain) {
        evidence.push((Reason::SameDomain, 0.45));
    }
    let sim = name_similarity(&probe.name, &candidate.name);
    if sim >= 0.88 {
        // 0.88 → 0.3, exact → 0.75
        evidence.push((Reason::SimilarName, 0.3 + (sim - 0.88) / 0.12 * 0.45));
    }
    if probe.account.is_some() && probe.account == candidate.account && sim >= 0.8 {
        evidence.push((Reason::SameAccount, 0.3));
    }
    let miss: f64 = evidence.iter().map(|(_, w)| 1.0 - w).product();
    let score = ((1.0 - miss) * 1000.0).round() / 1000.0;
    (score, evidence.into_iter().map(|(r, _)| r).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn person(name: &str, email: Option<&str>, phone: Option<&str>) -> Fingerprint {
        Fingerprint {
            name: name.into(),
            email: email.and_then(normalise_email),
            phone: phone.and_then(normalise_phone),
            domain: email.and_then(email_domain),
            account: None,
        }
    }

    #[test]
    fn normalisation() {
        assert_eq!(normalise_email(" Grace.Hopper+crm@GMail.com "), Some("gracehopper@gmail.com".into()));
        assert_eq!(normalise_email("a.b@navy.mil"), Some("a.b@navy.mil".into()));
        assert_eq!(normalise_email("nope"), None);
        assert_eq!(normalise_phone("+1 (415) 555-0100"), normalise_phone("415.555.0100"));
        assert_eq!(normalise_phone("12"), None);
        assert_eq!(normalise_domain("https://www.Acme.com/about"), Some("acme.com".into()));
        assert_eq!(normalise_domain("localhost"), None);
        assert_eq!(normalise_name("ACME, Inc."), "acme");
        assert_eq!(normalise_name("Société Générale S.A."), "societe generale");
        assert_eq!(email_domain("x@gmail.com"), None);
    }

    #[test]
    fn scores_rank_real_duplicates_first() {
        let grace = person("Grace Hopper", Some("grace.hopper@navy.mil"), Some("+1 202 555 0100"));
        let same_email = person("G. Hopper", Some("Grace.Hopper@navy.mil"), None);
        let typo = person("Grace Hoper", None, Some("(202) 555-0100"));
        let reversed = person("Hopper, Grace", None, None);
        let colleague = person("Alan Turing", Some("alan@navy.mil"), None);
        let (s_email, r_email) = score(&grace, &same_email);
        let (s_typo, r_typo) = score(&grace, &typo);
        let (s_rev, _) = score(&grace, &reversed);
        let (s_col, r_col) = score(&grace, &colleague);
        assert!(s_email >= 0.9 && r_email.contains(&Reason::SameEmail));
        assert!(s_typo > 0.7 && r_typo == vec![Reason::SamePhone, Reason::SimilarName], "{s_typo} {r_typo:?}");
        assert!(s_rev >= MIN_SCORE, "{s_rev}");
        assert!(s_col < MIN_SCORE && r_col == vec![Reason::SameDomain], "{s_col}");
    }

    proptest! {
        #[test]
        fn score_is_a_probability_and_symmetric(a in "[a-zA-Z ]{0,20}", b in "[a-zA-Z ]{0,20}",
                                                 e in proptest::option::of("[a-z]{1,5}@[a-z]{1,5}\\.com")) {
            let p = Fingerprint { name: a, email: e.clone(), ..Default::default() };
            let q = Fingerprint { name: b, email: e, ..Default::default() };
            let (s1, _) = score(&p, &q);
            let (s2, _) = score(&q, &p);
            prop_assert!((0.0..=1.0).contains(&s1));
            prop_assert!((s1 - s2).abs() < 1e-9);
            prop_assert!(score(&p, &p).0 >= score(&p, &q).0 - 1e-9 || p.name.trim().is_empty());
        }
    }
}
