//! Word lists: people, companies, places, titles. Fictional combinations of common words; phone
//! numbers elsewhere use reserved fictional ranges and IPs the documentation ranges.

use crate::model::Industry;

use super::time::Region;

#[rustfmt::skip]
pub(crate) const FIRST_NAMES: &[&str] = &[
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Daniel", "Karen",
    "Matthew", "Nancy", "Anthony", "Lisa", "Mark", "Betty", "Steven", "Sandra", "Andrew", "Ashley", "Joshua",
    "Emily", "Kevin", "Michelle", "Brian", "Amanda", "George", "Melissa", "Timothy", "Stephanie", "Oliver",
    "Amelia", "Harry", "Isla", "Jack", "Ava", "Noah", "Sophie", "Lukas", "Lena", "Felix", "Hannah", "Jonas",
    "Lea", "Louis", "Chloé", "Hugo", "Camille", "Mateo", "Lucía", "Pablo", "Elena", "Lars", "Ingrid", "Erik",
    "Astrid", "Sven", "Freja", "Marco", "Giulia", "Luca", "Chiara", "Pieter", "Sanne", "Daan", "Femke",
    "Hiroshi", "Yuki", "Kenji", "Aiko", "Wei", "Mei", "Jun", "Li", "Arjun", "Priya", "Rahul", "Ananya",
    "Vikram", "Aisha", "Omar", "Fatima", "Tariq", "Leila", "Chloe", "Liam", "Zoe", "Ethan", "Mia", "Lucas",
    "Grace", "Gabriel", "Beatriz", "Rafael", "Mariana", "Diego", "Valentina", "Santiago", "Camila", "Nicolás",
    "Sofía", "Siobhán", "Seán", "Aoife", "Niamh", "Jan", "Zofia", "Tomasz", "Katarzyna", "Min-jun", "Seo-yeon",
    "Thabo", "Naledi", "Kwame", "Ama", "Dmitri", "Olga", "Noor", "Yusuf", "Ines", "Joaquim", "Renée", "Björn",
    "Åsa",
];

#[rustfmt::skip]
pub(crate) const LAST_NAMES: &[&str] = &[
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee",
    "Thompson", "White", "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Green", "Baker", "Adams", "Nelson", "Hill", "Campbell", "Mitchell", "Roberts", "Carter", "Evans",
    "Turner", "Collins", "Murphy", "Cook", "Rogers", "Morgan", "Cooper", "Peterson", "Reed", "Bailey", "Kelly",
    "Howard", "Cox", "Ward", "Richardson", "Watson", "Brooks", "Wood", "Bennett", "Gray", "Hughes", "Price",
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann", "Schulz",
    "Dubois", "Durand", "Lefèvre", "Moreau", "Laurent", "Girard", "Rossi", "Russo", "Ferrari", "Esposito",
    "Bianchi", "Romano", "de Jong", "Jansen", "de Vries", "van den Berg", "Bakker", "Visser", "Andersson",
    "Johansson", "Karlsson", "Nilsson", "Larsen", "Hansen", "Nielsen", "Sato", "Suzuki", "Takahashi", "Tanaka",
    "Watanabe", "Wang", "Zhang", "Liu", "Chen", "Yang", "Huang", "Patel", "Sharma", "Singh", "Kumar", "Gupta",
    "Iyer", "Khan", "Ahmed", "Hassan", "Silva", "Santos", "Oliveira", "Souza", "Pereira", "Costa", "Fernández",
    "González", "Sánchez", "Ramírez", "Torres", "Flores", "O'Brien", "O'Connor", "Walsh", "Byrne", "Kowalski",
    "Nowak", "Kim", "Park", "Choi", "Nkosi", "Mensah", "Ivanova", "Novak", "Horvat", "Papadopoulos", "Yilmaz",
];

/// First halves of fictional company names.
#[rustfmt::skip]
pub(crate) const COMPANY_STEMS: &[&str] = &[
    "Northwind", "Bluepeak", "Ironbridge", "Silverline", "Brightwater", "Stonefield", "Redwood", "Clearview",
    "Oakridge", "Suncrest", "Harborview", "Greenfield", "Highland", "Riverbend", "Lakeshore", "Crestline",
    "Blackstone", "Whitecap", "Goldleaf", "Evergreen", "Summit", "Pinnacle", "Horizon", "Meridian", "Vertex",
    "Nimbus", "Aurora", "Polaris", "Zenith", "Keystone", "Cobalt", "Granite", "Falcon", "Heron", "Kestrel",
    "Osprey", "Lynx", "Otter", "Beacon", "Lighthouse", "Compass", "Anchor", "Atlas", "Orion", "Vega", "Nova",
    "Quantum", "Vector", "Sigma", "Apex", "Lumen", "Prism", "Cascade", "Tidewater", "Westbrook", "Eastgate",
    "Southport", "Northgate", "Maple", "Cedar", "Birch", "Willow", "Aspen", "Juniper", "Sequoia", "Magnolia",
    "Copperleaf", "Brightpath", "Trueline", "Swiftwater", "Starling", "Bramble", "Foxglove", "Thistle",
    "Kingsbridge", "Ashford", "Fairmont", "Belmont", "Clarion", "Solstice", "Halcyon", "Ember", "Cinder",
];

/// Second halves of company names, by industry.
pub(crate) fn company_suffixes(industry: Industry) -> &'static [&'static str] {
    match industry {
        Industry::Software => &["Software", "Labs", "Systems", "Technologies", "Cloud", "Analytics", "Digital"],
        Industry::FinancialServices => &["Capital", "Financial", "Bank", "Insurance", "Partners", "Payments"],
        Industry::Healthcare => &["Health", "Medical", "Clinics", "Biotech", "Care", "Diagnostics"],
        Industry::Manufacturing => &["Manufacturing", "Industries", "Components", "Machinery", "Fabrication"],
        Industry::Retail => &["Retail", "Outfitters", "Markets", "Goods", "Stores", "Brands"],
        Industry::Education => &["Learning", "Academy", "Education", "University", "Institute"],
        Industry::Media => &["Media", "Studios", "Publishing", "Broadcasting", "Creative"],
        Industry::Logistics => &["Logistics", "Freight", "Shipping", "Transport", "Supply Chain"],
        Industry::Energy => &["Energy", "Power", "Renewables", "Utilities", "Solar"],
        Industry::PublicSector => &["County Services", "Municipal Authority", "Transit Agency", "Public Works"],
        Industry::ProfessionalServices => &["Consulting", "Advisory", "Group", "Associates", "Legal"],
        Industry::Other => &["Holdings", "Ventures", "Enterprises", "Co.", "Collective"],
    }
}

pub(crate) const INDUSTRY_WEIGHTS: &[(Industry, f64)] = &[
    (Industry::Software, 0.20),
    (Industry::FinancialServices, 0.12),
    (Industry::Healthcare, 0.10),
    (Industry::Manufacturing, 0.11),
    (Industry::Retail, 0.09),
    (Industry::Education, 0.05),
    (Industry::Media, 0.05),
    (Industry::Logistics, 0.07),
    (Industry::Energy, 0.04),
    (Industry::PublicSector, 0.04),
    (Industry::ProfessionalServices, 0.09),
    (Industry::Other, 0.04),
];

/// A sub-territory: name, countries (ISO 3166 alpha-2) and a few cities per country.
#[derive(Debug)]
pub(crate) struct Place {
    pub territory: &'static str,
    pub region: Region,
    pub countries: &'static [(&'static str, &'static [&'static str])],
}

pub(crate) const PLACES: &[Place] = &[
    Place {
        territory: "NA East",
        region: Region::Na,
        countries: &[
            ("US", &["New York", "Boston", "Philadelphia", "Atlanta", "Miami", "Charlotte"]),
            ("CA", &["Toronto", "Montreal", "Ottawa"]),
        ],
    },
    Place {
        territory: "NA Central",
        region: Region::Na,
        countries: &[("US", &["Chicago", "Dallas", "Austin", "Minneapolis", "Denver", "Houston"])],
    },
    Place {
        territory: "NA West",
        region: Region::Na,
        countries: &[
            ("US", &["San Francisco", "Seattle", "Los Angeles", "San Diego", "Portland"]),
            ("CA", &["Vancouver", "Calgary"]),
        ],
    },
    Place {
        territory: "UK & Ireland",
        region: Region::Emea,
        countries: &[("GB", &["London", "Manchester", "Edinburgh", "Bristol", "Leeds"]), ("IE", &["Dublin", "Cork"])],
    },
    Place {
        territory: "DACH",
        region: Region::Emea,
        countries: &[
            ("DE", &["Berlin", "Munich", "Hamburg", "Frankfurt", "Cologne"]),
            ("AT", &["Vienna", "Graz"]),
            ("CH", &["Zurich", "Basel", "Geneva"]),
        ],
    },
    Place {
        territory: "France & Benelux",
        region: Region::Emea,
        countries: &[
            ("FR", &["Paris", "Lyon", "Toulouse", "Nantes"]),
            ("NL", &["Amsterdam", "Rotterdam", "Utrecht"]),
            ("BE", &["Brussels", "Antwerp"]),
        ],
    },
    Place {
        territory: "Nordics",
        region: Region::Emea,
        countries: &[
            ("SE", &["Stockholm", "Gothenburg", "Malmö"]),
            ("DK", &["Copenhagen", "Aarhus"]),
            ("NO", &["Oslo", "Bergen"]),
            ("FI", &["Helsinki", "Espoo"]),
        ],
    },
    Place {
        territory: "Southern Europe",
        region: Region::Emea,
        countries: &[
            ("ES", &["Madrid", "Barcelona", "Valencia"]),
            ("IT", &["Milan", "Rome", "Turin"]),
            ("PT", &["Lisbon", "Porto"]),
        ],
    },
    Place {
        territory: "ANZ",
        region: Region::Apac,
        countries: &[("AU", &["Sydney", "Melbourne", "Brisbane", "Perth"]), ("NZ", &["Auckland", "Wellington"])],
    },
    Place {
        territory: "Japan & Korea",
        region: Region::Apac,
        countries: &[("JP", &["Tokyo", "Osaka", "Yokohama"]), ("KR", &["Seoul", "Busan"])],
    },
    Place {
        territory: "Southeast Asia & India",
        region: Region::Apac,
        countries: &[
            ("SG", &["Singapore"]),
            ("IN", &["Bengaluru", "Mumbai", "Pune", "Hyderabad"]),
            ("MY", &["Kuala Lumpur"]),
        ],
    },
    Place {
        territory: "Brazil",
        region: Region::Latam,
        countries: &[("BR", &["São Paulo", "Rio de Janeiro", "Belo Horizonte", "Curitiba"])],
    },
    Place {
        territory: "Spanish-speaking LATAM",
        region: Region::Latam,
        countries: &[
            ("MX", &["Mexico City", "Guadalajara", "Monterrey"]),
            ("CO", &["Bogotá", "Medellín"]),
            ("AR", &["Buenos Aires", "Córdoba"]),
            ("CL", &["Santiago"]),
        ],
    },
];

/// Top-level domain for a country.
pub(crate) fn tld(country: &str) -> &'static str {
    match country {
        "GB" => "co.uk",
        "DE" => "de",
        "FR" => "fr",
        "NL" => "nl",
        "SE" => "se",
        "ES" => "es",
        "IT" => "it",
        "AU" => "com.au",
        "JP" => "jp",
        "BR" => "com.br",
        "IN" => "in",
        "CH" => "ch",
        _ => "com",
    }
}

/// Country calling code, for phone numbers.
pub(crate) fn calling_code(country: &str) -> &'static str {
    match country {
        "US" | "CA" => "1",
        "GB" => "44",
        "IE" => "353",
        "DE" => "49",
        "AT" => "43",
        "CH" => "41",
        "FR" => "33",
        "NL" => "31",
        "BE" => "32",
        "SE" => "46",
        "DK" => "45",
        "NO" => "47",
        "FI" => "358",
        "ES" => "34",
        "IT" => "39",
        "PT" => "351",
        "AU" => "61",
        "NZ" => "64",
        "JP" => "81",
        "KR" => "82",
        "SG" => "65",
        "IN" => "91",
        "MY" => "60",
        "BR" => "55",
        "MX" => "52",
        "CO" => "57",
        "AR" => "54",
        _ => "56",
    }
}

/// VAT in basis points charged on invoices and quotes to customers in `country` (0 outside EMEA).
pub(crate) fn vat_bp(country: &str) -> i64 {
    match country {
        "GB" | "FR" | "AT" => 2000,
        "DE" => 1900,
        "NL" | "ES" | "BE" => 2100,
        "IT" | "IE" => 2200,
        "SE" | "DK" | "NO" => 2500,
        "FI" => 2550,
        "PT" => 2300,
        "CH" => 810,
        _ => 0,
    }
}

pub(crate) const TITLES_INDIVIDUAL: &[&str] = &[
    "Sales Operations Analyst",
    "Account Executive",
    "Data Analyst",
    "Marketing Specialist",
    "Software Engineer",
    "Business Analyst",
    "Procurement Specialist",
    "Customer Success Specialist",
    "Financial Analyst",
    "IT Administrator",
];
pub(crate) const TITLES_MANAGER: &[&str] = &[
    "Sales Manager",
    "IT Manager",
    "Marketing Manager",
    "Operations Manager",
    "Procurement Manager",
    "Revenue Operations Manager",
    "Engineering Manager",
    "Customer Success Manager",
];
pub(crate) const TITLES_DIRECTOR: &[&str] = &[
    "Director of Sales",
    "Director of IT",
    "Director of Revenue Operations",
    "Director of Marketing",
    "Director of Finance",
    "Director of Customer Experience",
];
pub(crate) const TITLES_VP: &[&str] =
    &["VP Sales", "VP Engineering", "VP Marketing", "VP Operations", "VP Finance", "VP Customer Success"];
pub(crate) const TITLES_C_LEVEL: &[&str] = &["CEO", "CFO", "CTO", "CIO", "COO", "Chief Revenue Officer"];

pub(crate) const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0",
    "Orbas-iOS/3.4.1 (iPhone; iOS 17.6)",
    "Orbas-Android/3.4.0 (Pixel 8; Android 14)",
];

/// A lower-case ASCII slug of `s` (letters and digits, words joined by `-`).
pub(crate) fn slugify(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = fold_ascii(c);
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// Lower-case ASCII local part for e-mail addresses: `first.last`.
pub(crate) fn email_local(first: &str, last: &str) -> String {
    let f: String = first.chars().map(fold_ascii).filter(char::is_ascii_alphanumeric).collect();
    let l: String = last.chars().map(fold_ascii).filter(char::is_ascii_alphanumeric).collect();
    format!("{}.{}", f.to_ascii_lowercase(), l.to_ascii_lowercase())
}

fn fold_ascii(c: char) -> char {
    match c {
        'á' | 'à' | 'â' | 'ä' | 'å' | 'ã' | 'Å' | 'Ä' | 'Á' => 'a',
        'é' | 'è' | 'ê' | 'ë' | 'É' => 'e',
        'í' | 'ì' | 'î' | 'ï' => 'i',
        'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ø' | 'Ö' => 'o',
        'ú' | 'ù' | 'û' | 'ü' | 'Ü' => 'u',
        'ñ' => 'n',
        'ç' => 'c',
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_emails_are_ascii() {
        assert_eq!(slugify("Müller & Søn — Logistics Co."), "muller-son-logistics-co");
        assert_eq!(email_local("Chloé", "O'Brien"), "chloe.obrien");
        assert_eq!(email_local("Siobhán", "van den Berg"), "siobhan.vandenberg");
    }

    #[test]
    fn every_place_has_cities() {
        for p in PLACES {
            assert!(!p.countries.is_empty());
            assert!(p.countries.iter().all(|(c, cities)| c.len() == 2 && !cities.is_empty()));
        }
        for r in [Region::Na, Region::Emea, Region::Apac, Region::Latam] {
            assert!(PLACES.iter().any(|p| p.region == r));
        }
    }
}
