//! Input validation shared by mutations and the seed. Pure functions: each
//! returns the normalised value or a message saying what is wrong.

/// Finnish business ID `NNNNNNN-C` (Y-tunnus), check digit per docs/register.md.
pub fn business_id(input: &str) -> Result<String, String> {
    let s = input.trim();
    let bytes = s.as_bytes();
    if bytes.len() != 9
        || bytes[7] != b'-'
        || !s[..7].bytes().all(|b| b.is_ascii_digit())
        || !bytes[8].is_ascii_digit()
    {
        return Err("must have the form NNNNNNN-C".into());
    }
    match business_id_check_digit(&s[..7]) {
        Some(c) if c == bytes[8] - b'0' => Ok(s.to_owned()),
        Some(_) => Err("check digit does not match".into()),
        None => Err("no business ID has these seven digits (remainder 1)".into()),
    }
}

/// The check digit for seven digits, or `None` where the remainder is 1 and no
/// valid ID exists.
pub fn business_id_check_digit(digits: &str) -> Option<u8> {
    const WEIGHTS: [u32; 7] = [7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = digits.bytes().zip(WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
    match sum % 11 {
        0 => Some(0),
        1 => None,
        r => Some((11 - r) as u8),
    }
}

pub fn email(input: &str) -> Result<String, String> {
    let s = input.trim();
    let (local, domain) = s.split_once('@').ok_or("must contain @")?;
    let ok = !local.is_empty()
        && local.len() <= 64
        && s.len() <= 254
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(s.to_owned())
    } else {
        Err("is not an email address".into())
    }
}

/// International or Finnish phone number: digits with optional leading `+`,
/// spaces, hyphens and parentheses; 6 to 15 digits (E.164 maximum).
pub fn phone(input: &str) -> Result<String, String> {
    let s = input.trim();
    let rest = s.strip_prefix('+').unwrap_or(s);
    if !rest.chars().all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')')) {
        return Err("may contain only digits, spaces, hyphens, parentheses and a leading +".into());
    }
    let digits = rest.chars().filter(char::is_ascii_digit).count();
    if !(6..=15).contains(&digits) {
        return Err("must have 6 to 15 digits".into());
    }
    Ok(s.to_owned())
}

/// ISO 3166-1 alpha-2, officially assigned codes.
pub fn country(input: &str) -> Result<String, String> {
    let s = input.trim().to_ascii_uppercase();
    if s.len() == 2 && ISO_COUNTRIES.split(' ').any(|c| c == s) {
        Ok(s)
    } else {
        Err("is not an ISO 3166-1 alpha-2 country code".into())
    }
}

/// EU member states and the other EEA countries (IS, LI, NO).
pub fn in_eu_eea(country: &str) -> bool {
    const EU_EEA: &str =
        "AT BE BG HR CY CZ DK EE FI FR DE GR IE IT LV LT LU MT NL PL PT RO SK SI ES SE IS LI NO";
    EU_EEA.split(' ').any(|c| c == country)
}

/// TOL 2008 industry code: five digits.
pub fn industry_code(input: &str) -> Result<String, String> {
    let s = input.trim();
    if s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_owned())
    } else {
        Err("must be a five-digit TOL 2008 code".into())
    }
}

pub fn website(input: &str) -> Result<String, String> {
    let s = input.trim();
    match url::Url::parse(s) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some_and(|h| h.contains('.')) =>
        {
            Ok(s.to_owned())
        }
        _ => Err("must be an http or https URL".into()),
    }
}

/// A required free-text value: trimmed, not empty, at most `max` characters.
pub fn text(input: &str, max: usize) -> Result<String, String> {
    let s = input.trim();
    if s.is_empty() {
        Err("must not be empty".into())
    } else if s.chars().count() > max {
        Err(format!("must be at most {max} characters"))
    } else if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        Err("must not contain control characters".into())
    } else {
        Ok(s.to_owned())
    }
}

const ISO_COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// One calendar month after `date`, clamped to the month's last day
/// (31 January → the last day of February), as GDPR art. 12(3) deadlines run.
pub fn one_month_after(date: chrono::NaiveDate) -> chrono::NaiveDate {
    date.checked_add_months(chrono::Months::new(1)).unwrap_or(date)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn business_ids_of_the_controllers_are_valid() {
        for id in ["0512696-4", "2725690-3", "1484332-4"] {
            assert_eq!(business_id(id).as_deref(), Ok(id));
        }
    }

    #[test]
    fn business_id_rejects_wrong_check_digit_and_form() {
        assert!(business_id("0512696-5").is_err());
        assert!(business_id("512696-4").is_err());
        assert!(business_id("0512696_4").is_err());
        assert!(business_id("05126964").is_err());
    }

    #[test]
    fn business_id_remainder_zero_gives_zero_and_one_is_invalid() {
        // 0000000: sum 0 → check digit 0.
        assert_eq!(business_id_check_digit("0000000"), Some(0));
        assert_eq!(business_id("0000000-0").as_deref(), Ok("0000000-0"));
        // 1000000: 7 mod 11 = 7 → 4; 0000010: 4 mod 11 → 7.
        assert_eq!(business_id_check_digit("1000000"), Some(4));
        // 0000003: 6 mod 11 = 6 → 5; 0000005: 10 → 1; 0000006: 12 mod 11 = 1 → none.
        assert_eq!(business_id_check_digit("0000006"), None);
        assert!(business_id("0000006-1").is_err());
    }

    #[test]
    fn emails_phones_countries_codes_and_urls() {
        assert!(email("matti.meikalainen@example.fi").is_ok());
        for bad in ["no-at", "a@b", "a@@b.fi", "a b@c.fi", "@c.fi", "a@.fi", "a@c..fi"] {
            assert!(email(bad).is_err(), "{bad}");
        }
        assert!(phone("+358 40 123 4567").is_ok());
        assert!(phone("040-1234567").is_ok());
        assert!(phone("12345").is_err());
        assert!(phone("+358 40 abc").is_err());
        assert_eq!(country("fi").as_deref(), Ok("FI"));
        assert!(country("XX").is_err());
        assert!(
            in_eu_eea("NO")
                && in_eu_eea("FI")
                && !in_eu_eea("US")
                && !in_eu_eea("GB")
                && !in_eu_eea("CH")
        );
        assert!(industry_code("01110").is_ok());
        assert!(industry_code("0111").is_err() && industry_code("0111a").is_err());
        assert!(website("https://www.example.fi").is_ok());
        assert!(website("ftp://example.fi").is_err() && website("not a url").is_err());
        assert!(text("  ", 10).is_err() && text("abc", 2).is_err());
    }

    #[test]
    fn one_month_deadline_clamps_to_month_end() {
        let d = |y, m, day| chrono::NaiveDate::from_ymd_opt(y, m, day).expect("date");
        assert_eq!(one_month_after(d(2026, 1, 31)), d(2026, 2, 28));
        assert_eq!(one_month_after(d(2028, 1, 31)), d(2028, 2, 29));
        assert_eq!(one_month_after(d(2026, 3, 31)), d(2026, 4, 30));
        assert_eq!(one_month_after(d(2026, 12, 15)), d(2027, 1, 15));
    }
}
