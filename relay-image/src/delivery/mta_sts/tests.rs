use super::*;

const ENFORCE: &str = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 86400\r\n";

#[test]
fn an_enforce_policy_parses_with_its_patterns() {
    let policy = parse(ENFORCE).unwrap();
    assert_eq!(
        policy,
        Policy {
            mode: Mode::Enforce,
            mx: vec!["mail.example.com".into(), "*.example.net".into()],
            max_age: 86400
        }
    );
}

#[test]
fn wildcards_match_exactly_one_label() {
    let policy = parse(ENFORCE).unwrap();
    assert!(policy.allows("mail.example.com"));
    assert!(policy.allows("MAIL.Example.COM."));
    assert!(policy.allows("mx1.example.net"));
    assert!(!policy.allows("a.b.example.net"));
    assert!(!policy.allows("example.net"));
    assert!(!policy.allows("evilexample.net"));
    assert!(!policy.allows("mail.example.com.evil.org"));
}

#[test]
fn bad_policies_are_refused_with_the_reason() {
    assert_eq!(
        parse("mode: enforce\nmx: a.b\nmax_age: 1\n"),
        Err(PolicyError::Version)
    );
    assert_eq!(
        parse("version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n"),
        Err(PolicyError::Mode)
    );
    assert_eq!(
        parse("version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n"),
        Err(PolicyError::MaxAge)
    );
    assert_eq!(
        parse("version: STSv1\nmode: enforce\nmax_age: 5\n"),
        Err(PolicyError::NoMx(Mode::Enforce))
    );
    assert_eq!(
        parse("version: STSv1\nmode: none\nmax_age: 5\n")
            .unwrap()
            .mode,
        Mode::None
    );
}

#[test]
fn max_age_is_capped_at_one_year() {
    let policy = parse("version: STSv1\nmode: testing\nmx: a.b\nmax_age: 9999999999\n").unwrap();
    assert_eq!(policy.max_age, 31_557_600);
}

#[test]
fn the_txt_record_must_start_with_the_version_and_carry_an_id() {
    assert!(txt_announces_policy("v=STSv1; id=20261203T1200;"));
    assert!(!txt_announces_policy("v=STSv1; id=not_alnum!"));
    assert!(!txt_announces_policy("id=1; v=STSv1"));
    assert!(!txt_announces_policy("v=STSv1"));
}

#[test]
fn http_bodies_need_200_and_text_plain_and_may_be_chunked() {
    let plain = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nversion: STSv1\r\n";
    assert_eq!(http_body(plain).unwrap(), b"version: STSv1\r\n");
    let chunked = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nversi\r\n3\r\non:\r\n0\r\n\r\n";
    assert_eq!(http_body(chunked).unwrap(), b"version:");
    let redirect = b"HTTP/1.1 301 Moved\r\nContent-Type: text/plain\r\n\r\n";
    assert_eq!(
        http_body(redirect).unwrap_err(),
        "status line \"http/1.1 301 moved\""
    );
    let html = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\nx";
    assert_eq!(
        http_body(html).unwrap_err(),
        "content type is not text/plain"
    );
}
