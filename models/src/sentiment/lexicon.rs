//! The baseline: a word-list scorer in the VADER tradition, sized for support e-mail. Each positive or
//! negative cue counts ±1 (strong cues ±2), a negator within the three words before a cue flips it
//! ("not happy", "never works"), an intensifier before it adds half ("really slow"), and "but" shifts
//! the weight to what follows it. A text whose total stays within ±[`NEUTRAL_BAND`] is neutral.
//! It is what the classifier has to beat, and it needs no model files.

use orbas_oltp::model::SentimentLabel;

/// Totals strictly inside this band are neutral.
const NEUTRAL_BAND: f64 = 1.0;

const POSITIVE: &[&str] = &[
    "thanks",
    "thank",
    "thx",
    "great",
    "good",
    "love",
    "loves",
    "loved",
    "happy",
    "glad",
    "excellent",
    "perfect",
    "perfectly",
    "awesome",
    "amazing",
    "appreciate",
    "appreciated",
    "helpful",
    "quick",
    "quickly",
    "fast",
    "smooth",
    "smoothly",
    "works",
    "working",
    "work",
    "fixed",
    "resolved",
    "solved",
    "pleased",
    "nice",
    "fantastic",
    "wonderful",
    "brilliant",
    "impressed",
    "easy",
    "enjoy",
    "enjoying",
    "recommend",
    "satisfied",
    "delighted",
    "kudos",
    "cheers",
    "superb",
    "reliable",
    "well",
    "success",
    "successful",
    "best",
    "better",
    "improved",
    "improvement",
    "exceeded",
    "grateful",
    "lifesaver",
    "stellar",
    "responsive",
    "seamless",
    "clear",
    "useful",
    "valuable",
];

const STRONG_POSITIVE: &[&str] =
    &["love", "loves", "excellent", "amazing", "fantastic", "wonderful", "brilliant", "delighted", "superb", "stellar"];

const NEGATIVE: &[&str] = &[
    "problem",
    "problems",
    "issue",
    "broken",
    "bug",
    "bugs",
    "fail",
    "fails",
    "failed",
    "failing",
    "failure",
    "error",
    "errors",
    "slow",
    "slowly",
    "crash",
    "crashes",
    "crashed",
    "wrong",
    "bad",
    "worse",
    "worst",
    "terrible",
    "awful",
    "horrible",
    "unacceptable",
    "frustrated",
    "frustrating",
    "frustration",
    "angry",
    "annoyed",
    "annoying",
    "disappointed",
    "disappointing",
    "disappointment",
    "useless",
    "unusable",
    "outage",
    "down",
    "lost",
    "lose",
    "losing",
    "missing",
    "stuck",
    "blocked",
    "blocking",
    "urgent",
    "escalate",
    "escalated",
    "escalating",
    "cancel",
    "cancelling",
    "canceling",
    "refund",
    "complaint",
    "complain",
    "poor",
    "ridiculous",
    "still",
    "again",
    "never",
    "nobody",
    "ignored",
    "unhappy",
    "upset",
    "waste",
    "wasted",
    "hate",
    "fed",
    "sick",
    "tired",
    "alternatives",
    "competitor",
    "churn",
    "leave",
    "leaving",
    "switch",
    "switching",
    "delay",
    "delayed",
    "late",
    "overdue",
    "unreliable",
    "confusing",
    "confused",
    "incorrect",
    "duplicate",
    "duplicates",
    "rejected",
    "timeout",
    "timeouts",
    "unfortunately",
    "sadly",
    "concern",
    "concerned",
    "worried",
    "risk",
    "pathetic",
    "garbage",
    "joke",
    "nightmare",
];

const STRONG_NEGATIVE: &[&str] = &[
    "unacceptable",
    "terrible",
    "awful",
    "horrible",
    "useless",
    "unusable",
    "outage",
    "furious",
    "hate",
    "worst",
    "ridiculous",
    "pathetic",
    "garbage",
    "nightmare",
    "disaster",
];

const NEGATORS: &[&str] = &[
    "not", "no", "never", "nothing", "without", "cannot", "cant", "dont", "doesnt", "didnt", "isnt", "wasnt", "wont",
    "arent", "havent", "hasnt", "hardly", "neither", "nor", "couldnt", "shouldnt", "wouldnt", "werent", "aint",
];

const INTENSIFIERS: &[&str] =
    &["very", "really", "so", "extremely", "incredibly", "totally", "completely", "absolutely", "super", "seriously"];

/// Lower-case word tokens with apostrophes dropped ("doesn't" → "doesnt").
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’'))
        .filter(|w| !w.is_empty())
        .map(|w| w.chars().filter(|c| *c != '\'' && *c != '’').flat_map(char::to_lowercase).collect())
        .collect()
}

fn polarity(word: &str) -> f64 {
    if STRONG_POSITIVE.contains(&word) {
        2.0
    } else if POSITIVE.contains(&word) {
        1.0
    } else if STRONG_NEGATIVE.contains(&word) {
        -2.0
    } else if NEGATIVE.contains(&word) {
        -1.0
    } else {
        0.0
    }
}

/// The signed total of a text's cues (positive = positive tone).
pub fn score(text: &str) -> f64 {
    let words = words(text);
    let mut total = 0.0;
    let mut after_but = false;
    for (i, w) in words.iter().enumerate() {
        if w == "but" || w == "however" || w == "although" {
            total *= 0.5; // what follows "but" carries the sentence
            after_but = true;
            continue;
        }
        let mut p = polarity(w);
        if p == 0.0 {
            continue;
        }
        let before = &words[i.saturating_sub(3)..i];
        if before.iter().any(|b| NEGATORS.contains(&b.as_str())) {
            // "not great" is as negative as "great" is positive; "not bad" only mildly positive.
            p = if p > 0.0 { -p } else { -0.5 * p };
        }
        if i > 0 && INTENSIFIERS.contains(&words[i - 1].as_str()) {
            p *= 1.5;
        }
        total += if after_but { 1.5 * p } else { p };
    }
    total
}

/// The baseline's label for a text.
pub fn classify(text: &str) -> SentimentLabel {
    label_of(score(text))
}

fn label_of(total: f64) -> SentimentLabel {
    if total >= NEUTRAL_BAND {
        SentimentLabel::Positive
    } else if total <= -NEUTRAL_BAND {
        SentimentLabel::Negative
    } else {
        SentimentLabel::Neutral
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SentimentLabel::*;

    #[test]
    fn cues_negation_and_intensity() {
        assert_eq!(classify("Thanks, that fixed it — great support!"), Positive);
        assert_eq!(classify("The export is broken and this is unacceptable."), Negative);
        assert_eq!(classify("Please send the invoice for March to our finance team."), Neutral);
        assert_eq!(classify("This is not great."), Negative, "negation flips a positive cue");
        assert_eq!(classify("It doesn't work at all"), Negative, "contraction negates");
        assert!(score("really slow") < score("slow"), "an intensifier strengthens");
        assert!(score("not bad at all") > 0.0, "a negated negative leans positive");
        assert_eq!(classify("The sync failed twice, but support fixed it quickly and we are happy."), Positive);
        assert_eq!(classify(""), Neutral);
    }

    #[test]
    fn tokens_ignore_case_and_apostrophes() {
        assert_eq!(words("Doesn't WORK, won’t sync!"), ["doesnt", "work", "wont", "sync"]);
    }
}
