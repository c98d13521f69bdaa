use super::*;

#[test]
fn figures_are_rendered_and_read_back() {
    let metrics = Metrics::new(ChatCounters::default());
    let open = metrics.session_opened(Transport::Websocket);
    metrics.signed_in(SignInOutcome::Failed);
    metrics.request("get", "ok");
    metrics.request("get", "ok");
    metrics.transfer(TransferKind::Put, Duration::from_millis(3));
    let text = metrics.render(&Snapshot {
        chat_rooms: 2,
        audit_dropped: 5,
        ..Snapshot::default()
    });
    let at = |series: &str| sample(&text, series);
    assert_eq!(
        at("ferry_sessions_open{transport=\"websocket\"}"),
        Some(1.0)
    );
    assert_eq!(at("ferry_sessions_open{transport=\"tcp\"}"), Some(0.0));
    assert_eq!(at("ferry_sign_ins_total{outcome=\"failed\"}"), Some(1.0));
    assert_eq!(
        at("ferry_requests_total{kind=\"get\",outcome=\"ok\"}"),
        Some(2.0)
    );
    assert_eq!(at("ferry_chat_rooms"), Some(2.0));
    assert_eq!(at("ferry_audit_dropped_total"), Some(5.0));
    assert_eq!(
        at("ferry_transfer_duration_seconds_count{direction=\"put\"}"),
        Some(1.0)
    );
    assert_eq!(
        at("ferry_cluster_up"),
        None,
        "only a clustered server shows it"
    );
    let parsed = samples(&text);
    let requests = parsed
        .iter()
        .find(|s| s.name == "ferry_requests_total")
        .unwrap();
    assert_eq!(requests.value, 2.0);
    assert_eq!(requests.labels["kind"], "get");
    assert_eq!(requests.labels["outcome"], "ok");
    assert_eq!(
        parse_sample(r#"x{a="q\"uote",b="c"} 3"#).unwrap().labels["a"],
        "q\"uote"
    );
    drop(open);
    let text = metrics.render(&Snapshot::default());
    assert_eq!(
        sample(&text, "ferry_sessions_open{transport=\"websocket\"}"),
        Some(0.0)
    );
}
