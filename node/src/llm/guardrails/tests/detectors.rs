//! The PII detectors, one table each: (text, what is found in it).

use super::*;

#[test]
fn emails() {
    let cases: &[(&str, &[&str])] = &[
        ("mail john.doe@example.com now", &["john.doe@example.com"]),
        ("a.b+tag@sub.example.co.uk", &["a.b+tag@sub.example.co.uk"]),
        ("<x_y-z@my-domain.io>", &["x_y-z@my-domain.io"]),
        ("ends with a dot: me@example.org.", &["me@example.org"]),
        (
            "two: a@example.com, b@example.net",
            &["a@example.com", "b@example.net"],
        ),
        ("user@localhost", &[]),
        ("a@b", &[]),
        ("name@domain.c", &[]),
        ("icon@2x.png and logo@3x.JPG", &[]),
        ("@app.route('/x') decorator", &[]),
        ("john..doe@example.com", &[]),
        (".@example.com", &[]),
        ("npm install left-pad@1.3.0", &[]),
        ("git@github", &[]),
    ];
    for (text, want) in cases {
        assert_eq!(spans(text), *want, "{text}");
    }
}

#[test]
fn phones() {
    let cases: &[(&str, &[&str])] = &[
        ("call +1 415 555 2671 today", &["+1 415 555 2671"]),
        ("+44 20 7946 0958", &["+44 20 7946 0958"]),
        ("+44 (0)20 7946 0958", &["+44 (0)20 7946 0958"]),
        ("mobile: +4915112345678.", &["+4915112345678"]),
        ("+33 6 12 34 56 78", &["+33 6 12 34 56 78"]),
        ("(415) 555-2671", &["(415) 555-2671"]),
        ("415-555-2671", &["415-555-2671"]),
        ("415.555.2671", &["415.555.2671"]),
        ("1-800-555-1234", &["1-800-555-1234"]),
        ("Tel. 030 1234567", &["030 1234567"]),
        ("0151 12345678", &["0151 12345678"]),
        ("(0151) 1234567", &["(0151) 1234567"]),
        ("(call 0151 1234567)", &["0151 1234567"]),
        ("06 12 34 56 78", &["06 12 34 56 78"]),
        ("06.12.34.56.78", &["06.12.34.56.78"]),
        // Not phone numbers.
        ("order 123456789012", &[]),
        ("ts=1700000000 ms=1700000000123", &[]),
        ("on 2024-01-15 at 10:30", &[]),
        ("on 05.01.2024", &[]),
        ("05-01-2024 14:30", &[]),
        ("0.12345678", &[]),
        ("ORD-2024-0151-1234", &[]),
        ("123-456-7890", &[]),
        ("12 34 56 78", &[]),
        ("1 234 567 890", &[]),
        ("ISBN 978-3-16-148410-0", &[]),
        ("+123", &[]),
        ("x+4915112345678", &[]),
        ("0151-1234567-99a", &[]),
        ("550e8400-e29b-41d4-a716-446655440000", &[]),
    ];
    for (text, want) in cases {
        assert_eq!(spans(text), *want, "{text}");
        assert!(cats(text).iter().all(|c| *c == "phone"), "{text}");
    }
}

#[test]
fn cards() {
    let cases: &[(&str, bool)] = &[
        ("4111 1111 1111 1111", true),
        ("4111-1111-1111-1111", true),
        ("pay with 4111111111111111.", true),
        ("5555 5555 5555 4444", true),
        ("3782 822463 10005", true),
        ("378282246310005", true),
        ("2223003122003222", true),
        ("6011111111111117", true),
        // Luhn fails.
        ("4111 1111 1111 1112", false),
        ("4111111111111112", false),
        // Luhn-valid but no card network starts with 9 (an order number).
        ("9123456789012348", false),
        // Mixed separators, odd grouping, too long, decimals.
        ("4111 1111-1111 1111", false),
        ("41 11 11 11 11 11 11 11", false),
        ("41111111111111110000", false),
        ("0.4111111111111111", false),
    ];
    for (text, want) in cases {
        let found = cats(text).contains(&"card");
        assert_eq!(found, *want, "{text}");
    }
    // A valid number followed by more digits is still found on its own.
    assert_eq!(spans("4111 1111 1111 1111 12"), ["4111 1111 1111 1111"]);
    assert!(pii::luhn(b"79927398713"));
    assert!(!pii::luhn(b"79927398710"));
}

#[test]
fn ibans() {
    let cases: &[(&str, &[&str])] = &[
        (
            "DE89 3704 0044 0532 0130 00",
            &["DE89 3704 0044 0532 0130 00"],
        ),
        (
            "to DE89370400440532013000 please",
            &["DE89370400440532013000"],
        ),
        (
            "GB82 WEST 1234 5698 7654 32",
            &["GB82 WEST 1234 5698 7654 32"],
        ),
        (
            "FR1420041010050500013M02606",
            &["FR1420041010050500013M02606"],
        ),
        ("NL91ABNA0417164300", &["NL91ABNA0417164300"]),
        (
            "IBAN: CH93 0076 2011 6238 5295 7.",
            &["CH93 0076 2011 6238 5295 7"],
        ),
        (
            "BE68539007547034 and NO9386011117947",
            &["BE68539007547034", "NO9386011117947"],
        ),
        (
            "AB12 DE89 3704 0044 0532 0130 00",
            &["DE89 3704 0044 0532 0130 00"],
        ),
        (
            "DE89 3704 0044 0532 0130 00 BIC COBADEFFXXX",
            &["DE89 3704 0044 0532 0130 00"],
        ),
        // Wrong check digits, wrong length, lower case, glued to a word.
        ("DE88 3704 0044 0532 0130 00", &[]),
        ("DE89 3704 0044 0532 0130 0", &[]),
        ("DE89370400440532013000X", &[]),
        ("de89370400440532013000", &[]),
        ("XYZDE89370400440532013000", &[]),
        ("SKU AB12CDEFGHIJKLMNOP", &[]),
    ];
    for (text, want) in cases {
        assert_eq!(spans(text), *want, "{text}");
    }
    assert_eq!(pii::mod97(b"DE89370400440532013000"), Some(1));
    assert_eq!(pii::mod97(b"DE8"), None);
    assert_eq!(pii::mod97("DE89é".as_bytes()), None);
}

#[test]
fn ip_addresses() {
    let cases: &[(&str, &[&str])] = &[
        ("host 192.168.1.1 is up", &["192.168.1.1"]),
        ("10.0.0.255, 8.8.8.8.", &["10.0.0.255", "8.8.8.8"]),
        ("http://172.16.0.1:8080/x", &["172.16.0.1"]),
        ("2001:db8::1", &["2001:db8::1"]),
        ("[fe80::1ff:fe23:4567:890a]", &["fe80::1ff:fe23:4567:890a"]),
        ("::ffff:192.168.1.1", &["::ffff:192.168.1.1"]),
        (
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            &["2001:0db8:85a3:0000:0000:8a2e:0370:7334"],
        ),
        ("at 2001:db8::1: refused", &["2001:db8::1"]),
        // Not addresses.
        ("256.1.1.1", &[]),
        ("192.168.1.256", &[]),
        ("1.2.3.4.5", &[]),
        ("192.168.01.1", &[]),
        ("version 1.2.3", &[]),
        ("v1.2.3.4", &[]),
        ("std::fs::read", &[]),
        ("a::b and Foo::Bar", &[]),
        ("10:30:00", &[]),
        ("::", &[]),
        ("::1", &[]),
        ("2001:db8:::1", &[]),
        ("de:ad:be:ef", &[]),
    ];
    for (text, want) in cases {
        assert_eq!(spans(text), *want, "{text}");
        assert!(cats(text).iter().all(|c| *c == "ip_address"), "{text}");
    }
}

#[test]
fn secrets() {
    for s in fake_secrets() {
        let text = format!("my key is {s} thanks");
        assert_eq!(cats(&text), ["secret"], "{text}");
        assert_eq!(spans(&text), [s.as_str()], "{text}");
    }
    let assigned: &[(&str, &str)] = &[
        ("api_key=abcd1234efgh", "abcd1234efgh"),
        (r#"{"password": "hunter22x"}"#, "hunter22x"),
        ("PASSWORD: Tr0ub4d0r%3.", "Tr0ub4d0r%3"),
        (
            "Authorization: Bearer abcdef123456ghijkl",
            "abcdef123456ghijkl",
        ),
        ("client_secret => 'c0ffee-cafe-babe'", "c0ffee-cafe-babe"),
        // A hex string is a secret when assigned to a secret-looking name.
        (
            "token: da39a3ee5e6b4b0d3255bfef95601890afd80709",
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        ),
    ];
    for (text, want) in assigned {
        assert_eq!(spans(text), [*want], "{text}");
    }
    let not_secrets = [
        "we use sk-learn for this",
        "sk-this-is-not-a-real-key-at-all",
        "task-1234567890abcdefghijklmnop",
        "id 550e8400-e29b-41d4-a716-446655440000",
        "commit da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "class GetUserById2FactorAuthTokenHandlerV2",
        "AbstractSingletonProxyFactoryBean2Impl",
        "HTTP2ServerConnectionManagerFactoryV3Builder",
        "my-Very-Long-Kebab-Case-Identifier-2024-Version",
        "/usr/local/lib/python3.11/site-packages/Foo2Bar",
        "max_tokens: 1024",
        "tokens: 1024",
        "password: ********",
        "token: counting",
        "the password is secret",
        "password=${PASSWORD}",
        "AKIAIOSFODNN7EXAMPLEXYZ",
        "GET /v1/usage?api_key=k1&window=current",
        "id msg_01XFDUDYJgAACzvnptvVoYEL and chatcmpl-9xYzAbC123dEfGhI456jKlMnO789pQ",
    ];
    for text in not_secrets {
        assert_eq!(cats(text), Vec::<&str>::new(), "{text}");
    }
    // Long base64 data (an inline image) is data, not a key.
    let mut rng = Rng(7);
    let blob = rng.token(ALNUM, 400);
    assert_eq!(cats(&blob), Vec::<&str>::new());
    // Random base64 keys of 40 characters are found nearly always.
    let found = (0..200)
        .filter(|_| cats(&rng.token(ALNUM, 40)) == ["secret"])
        .count();
    assert!(found >= 180, "{found}/200");
}

#[test]
fn overlapping_matches_are_reported_once() {
    // A JWT holds base64 runs; a PEM block holds key lines: one secret each.
    for s in fake_secrets() {
        assert_eq!(pii::scan(&s).len(), 1, "{s}");
    }
    // A card number as an email's local part: the email.
    assert_eq!(cats("4111111111111111@example.com"), ["email"]);
    // An IBAN's digits are not also a phone or a card.
    assert_eq!(cats("DE89 3704 0044 0532 0130 00"), ["iban"]);
    // Only the IBAN category off: its digits still do not count as something else.
    let g = Guard::new(&pii_cfg(
        &[PiiCategory::Card, PiiCategory::Phone],
        GuardAction::Block,
    ));
    let mut req = chat(json!("IBAN DE89 3704 0044 0532 0130 00"));
    assert_eq!(g.check_prompt(&mut req), Verdict::default());
}

#[test]
fn everyday_text_has_no_findings() {
    let texts = [
        "Traceback (most recent call last):\n  File \"/usr/lib/python3.11/site-packages/foo.py\", line 42, in <module>",
        "2024-01-15T10:30:00.123Z INFO request_id=550e8400-e29b-41d4-a716-446655440000 took 123ms",
        "Microsoft Windows [Version 10.0.19045.3803]",
        "Call me at 555-1234 or ext. 42",
        "price: $1,299.99 (was $1,499.00), 12% off, SKU 4006381333931",
        "lat 48.8566, lon 2.3522, alt 35 m",
        "image sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "x = 0.1234567890; y = 3.14159265358979",
        "Invoice INV-0042-7731-2210 due 2024/03/31",
        "ISBN 9783161484100, order #1234567890123456789",
        "let ts = 1700000000000; // 2023-11-14 22:13:20 UTC",
        "See RFC 7231 section 6.5.1 and https://example.com/docs/v2/getting-started?page=3",
        "impl<T: Clone + Send> Foo for Bar<T> where T: 'static { fn f(&self) -> u8 { 0 } }",
        "The meeting is on 05.01.2024 at 14:30 in room 0.12",
        "Scores: 12 34 56 78 90 11 22 33",
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
        "kubectl -n kube-system logs coredns-5d78c9869d-abcde --since=10m",
        "The quick brown fox jumps over the lazy dog 3 times.",
        "Free Software Foundation, 51 Franklin St, Boston, MA 02110-1301, USA.",
        "listen on 0.0.0.0:8080, health check on 127.0.0.1 and [::1]:9090",
        "upgrade to firmware version 1.8.1.6, release 2.0.0.1",
        "systemctl start pg_dump@main.service pg_basebackup@15-main.timer",
        concat!(
            "-----BEGIN PUBLIC KEY-----\n",
            "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAq87FG+vIidCwn7fOVXVv\n",
            "Xa9GI2SOIloDBOco5bbAl87tGaJy8VealFSS6swUisX5nUmdxbTNvS/YewiI1tIz\n",
            "-----END PUBLIC KEY-----",
        ),
        "-----BEGIN CERTIFICATE-----\n  MIICEjCCAXugAwIBAgIBQjANBgkqhkiG9w0BAQUFADAlMSMwIQYDVQQDExpEZWVw\n  <...>",
    ];
    for text in texts {
        assert_eq!(cats(text), Vec::<&str>::new(), "{text}");
    }
}
