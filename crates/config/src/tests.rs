use std::net::SocketAddr;
use std::path::PathBuf;

use super::*;

const GRPC: &str = "$.servers[0].listeners[0].filter_chains[0].filters[0].config.grpc_config";

/// A one-listener Layotto document whose `grpc_config` is `grpc_config` and whose listener
/// carries `listener_extra` (e.g. `"network": "unix",`) and `address`.
fn doc(listener_extra: &str, address: &str, grpc_config: &str) -> String {
    format!(
        r#"{{"servers": [{{"default_log_path": "stdout", "listeners": [{{
            "name": "grpc", {listener_extra} "address": "{address}", "bind_port": true,
            "filter_chains": [{{"filters": [{{"type": "grpc", "config": {{
                "server_name": "runtime", "grpc_config": {grpc_config}}}}}]}}]}}]}}]}}"#
    )
}

fn ok(text: &str) -> Config {
    match parse(text, "test.json") {
        Ok(config) => config,
        Err(problems) => panic!("unexpected problems:\n{problems}"),
    }
}

fn problems(text: &str) -> Problems {
    match parse(text, "test.json") {
        Ok(config) => panic!("expected problems, got {config:?}"),
        Err(problems) => problems,
    }
}

fn find<'a>(problems: &'a Problems, path: &str) -> &'a Problem {
    problems
        .iter()
        .find(|p| p.path == path)
        .unwrap_or_else(|| panic!("no problem at {path}:\n{problems}"))
}

#[test]
fn standalone_config_has_every_kind() {
    let config = standalone().expect("embedded standalone config is valid");
    assert_eq!(config.source, "<embedded config_standalone.json>");
    assert_eq!(
        config.grpc,
        ListenAddr::Tcp("127.0.0.1:34904".parse().expect("addr"))
    );
    assert_eq!(config.grpc.to_string(), "127.0.0.1:34904");
    assert_eq!(
        config.actuator,
        Some("127.0.0.1:34999".parse::<SocketAddr>().expect("addr"))
    );
    assert_eq!(config.app.app_id, "app1");
    assert_eq!(config.app.grpc_callback_port, None);
    assert_eq!(config.app.grpc_callback_host, "127.0.0.1");
    for kind in Kind::ALL {
        assert_eq!(config.of_kind(kind).count(), 1, "{kind}");
    }
    let kinds: Vec<Kind> = config.components.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, Kind::ALL.to_vec(), "sorted by kind order");

    let hello = &config.of_kind(Kind::Hello).next().expect("hello").spec;
    assert_eq!(hello.name, "quick_start_demo");
    assert_eq!(hello.type_, "helloworld");
    assert_eq!(hello.get("hello"), Some("greeting"));
    let seq = config.of_kind(Kind::Sequencer).next().expect("sequencer");
    assert_eq!(seq.spec.get("biggerThan"), Some(r#"{"key666":1000}"#));
    assert_eq!(seq.path, format!("{GRPC}.sequencer.sequencer_demo"));
    let secret = &config.of_kind(Kind::Secret).next().expect("secret").spec;
    assert_eq!(
        (secret.type_.as_str(), secret.get("prefix")),
        ("local.env", Some("LAYOTTO_SECRET_"))
    );
    let binding = &config.of_kind(Kind::Binding).next().expect("binding").spec;
    assert_eq!(binding.name, "http_demo");
    assert_eq!(binding.get("url"), Some("http://127.0.0.1:34999/actuator"));
}

#[test]
fn kind_sections_round_trip() {
    for kind in Kind::ALL {
        assert_eq!(Kind::from_section(kind.section()), Some(kind));
    }
    assert_eq!(Kind::from_section("custom_component"), None);
    assert_eq!(Kind::Configuration.section(), "config_store");
    assert_eq!(Kind::PubSub.to_string(), "pub_subs");
}

#[test]
fn old_style_component_uses_key_as_type() {
    let config = ok(&doc(
        "",
        "127.0.0.1:34904",
        r#"{"state": {"redis": {"metadata": {"redisHost": "localhost:6379"}}},
            "sequencer": {"seq": {"Type": "etcd"}}}"#,
    ));
    let state = &config.of_kind(Kind::State).next().expect("state").spec;
    assert_eq!(
        (state.name.as_str(), state.type_.as_str()),
        ("redis", "redis")
    );
    assert_eq!(state.get("redisHost"), Some("localhost:6379"));
    // Go's encoding/json matches field names case-insensitively; upstream configs use "Type".
    let seq = &config
        .of_kind(Kind::Sequencer)
        .next()
        .expect("sequencer")
        .spec;
    assert_eq!(seq.type_, "etcd");
    assert!(seq.metadata.is_empty(), "{:?}", seq.metadata);
    assert_eq!(config.actuator, None);
    assert_eq!(config.app, AppConfig::default());
}

#[test]
fn unix_listener() {
    let config = ok(&doc(
        r#""network": "unix","#,
        "/tmp/client-proxy.sock",
        r#"{"hellos": {"helloworld": {"type": "helloworld", "hello": "greeting"}}}"#,
    ));
    assert_eq!(
        config.grpc,
        ListenAddr::Unix(PathBuf::from("/tmp/client-proxy.sock"))
    );
    assert_eq!(config.grpc.to_string(), "unix:/tmp/client-proxy.sock");

    let p = problems(&doc("", "/tmp/client-proxy.sock", "{}"));
    let p = find(&p, "$.servers[0].listeners[0].address");
    assert!(p.message.contains("\"network\": \"unix\""), "{p}");
}

#[test]
fn tcp_addresses_without_dns() {
    use crate::layotto::parse_tcp;
    let cases = [
        ("localhost:34904", "127.0.0.1:34904"),
        ("0.0.0.0:34904", "0.0.0.0:34904"),
        ("[::1]:34904", "[::1]:34904"),
        (":34904", "0.0.0.0:34904"),
    ];
    for (input, want) in cases {
        assert_eq!(parse_tcp(input), Ok(want.parse().expect("addr")), "{input}");
    }
    for bad in [
        "34904",
        "example.com:1",
        "127.0.0.1:99999",
        "::1:34904",
        "1.2.3.4:x",
    ] {
        assert!(parse_tcp(bad).is_err(), "{bad}");
    }
}

#[test]
fn metadata_is_flattened_to_strings() {
    let config = ok(&doc(
        "",
        "localhost:34904",
        r#"{"config_store": {"config_demo": {
              "type": "etcd", "address": ["127.0.0.1:2379"], "timeout": "10",
              "metadata": {"port": 6379, "tls": true, "nested": {"b": 1, "a": [1.5, null]},
                           "name": "x", "empty": null}}},
            "app": {"app_id": "app1", "grpc_callback_port": 9999, "grpc_callback_host": "10.0.0.1"}}"#,
    ));
    assert_eq!(
        config.grpc,
        ListenAddr::Tcp("127.0.0.1:34904".parse().expect("addr"))
    );
    let spec = &config.components[0].spec;
    assert_eq!(spec.type_, "etcd");
    let m = &spec.metadata;
    assert_eq!(m["port"], "6379");
    assert_eq!(m["tls"], "true");
    assert_eq!(
        m["nested"], r#"{"b":1,"a":[1.5,null]}"#,
        "document key order kept"
    );
    assert_eq!(m["name"], "x");
    assert_eq!(m["empty"], "");
    assert_eq!(m["address"], r#"["127.0.0.1:2379"]"#);
    assert_eq!(m["timeout"], "10");
    assert!(!m.contains_key("type") && !m.contains_key("metadata"));
    assert_eq!(
        config.app,
        AppConfig {
            app_id: "app1".into(),
            grpc_callback_host: "10.0.0.1".into(),
            grpc_callback_port: Some(9999),
        }
    );
}

#[test]
fn malformed_json_reports_line_and_column() {
    let p = problems("{\n  \"servers\": [\n    {,\n  ]\n}");
    assert_eq!(p.len(), 1);
    let p = &p.0[0];
    assert_eq!(p.file, "test.json");
    assert_eq!(p.path, "3:6");
    assert!(p.message.starts_with("malformed JSON: "), "{p}");
    assert!(
        !p.message.contains("at line"),
        "position only in the path: {p}"
    );
    assert!(p.to_string().starts_with("test.json: 3:6: malformed JSON"));
}

#[test]
fn unreadable_file_names_file_and_os_error() {
    let path = std::path::Path::new("/nonexistent/layotto-rs/config.json");
    let p = load(path).expect_err("missing file");
    assert_eq!(p.len(), 1);
    assert_eq!(p.0[0].file, "/nonexistent/layotto-rs/config.json");
    assert!(p.0[0].message.contains("cannot read config file"), "{p}");
    assert!(p.0[0].message.contains("os error"), "{p}");
}

#[test]
fn load_reads_a_file() {
    let dir = std::env::temp_dir().join(format!("layotto-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("config.json");
    std::fs::write(&path, STANDALONE).expect("write");
    let config = load(&path).expect("valid");
    assert_eq!(config.source, path.display().to_string());
    assert_eq!(config.components.len(), 9);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let text = doc(
        "",
        "127.0.0.1:notaport",
        r#"{"stat": {"s": {"type": "in-memory"}},
            "state": {"ok": {"type": "in-memory"}, "broken": "in-memory",
                      "badtype": {"type": 5}, "badmeta": {"type": "redis", "metadata": [1]},
                      "twice": {"type": "redis", "host": "a", "metadata": {"host": "b"}}},
            "lock": {"l": {"type": "in-memory"}, "l": {"type": "redis"}},
            "app": {"app_id": "a", "grpc_callback_port": 70000, "appid": "typo"}}"#,
    );
    let p = problems(&text);
    let addr = find(&p, "$.servers[0].listeners[0].address");
    assert!(addr.message.contains("invalid port"), "{addr}");
    let unknown = find(&p, &format!("{GRPC}.stat"));
    assert!(
        unknown.message.contains("unknown section \"stat\"")
            && unknown
                .message
                .contains("known sections: app, resiliency, hellos, state"),
        "{unknown}"
    );
    let broken = find(&p, &format!("{GRPC}.state.broken"));
    assert!(broken.message.contains("found a string"), "{broken}");
    find(&p, &format!("{GRPC}.state.badtype.type"));
    find(&p, &format!("{GRPC}.state.badmeta.metadata"));
    find(&p, &format!("{GRPC}.state.twice.host"));
    let dup = find(&p, &format!("{GRPC}.lock.l"));
    assert!(dup.message.contains("duplicate key"), "{dup}");
    let port = find(&p, &format!("{GRPC}.app.grpc_callback_port"));
    assert!(port.message.contains("70000"), "{port}");
    find(&p, &format!("{GRPC}.app.appid"));
    assert_eq!(p.len(), 9, "{p}");
    let text = p.to_string();
    assert_eq!(text.lines().count(), 9);
    assert!(
        text.lines()
            .all(|l| l.starts_with("test.json: $.servers[0]")),
        "{text}"
    );
}

#[test]
fn structural_problems() {
    let p = problems("[]");
    assert_eq!(
        find(&p, "$").message,
        "expected a MOSN configuration (an object), found an array"
    );

    let p = problems(r#"{"tracing": {}}"#);
    assert!(find(&p, "$.servers").message.contains("missing"));

    let p = problems(r#"{"servers": [{"routers": []}, 3]}"#);
    assert!(
        find(&p, "$.servers[0].listeners")
            .message
            .contains("missing")
    );
    find(&p, "$.servers[1]");
    assert_eq!(p.len(), 3, "plus: no grpc filter\n{p}");
    assert!(
        find(&p, "$.servers")
            .message
            .contains("no listener has a filter of type \"grpc\"")
    );

    // Two grpc filters (in different servers); also a grpc filter without grpc_config.
    let one = doc("", "127.0.0.1:1", "{}");
    let two = doc("", "127.0.0.1:2", "{}");
    let servers = |d: &str| {
        let v: serde_json::Value = serde_json::from_str(d).expect("json");
        v["servers"][0].clone()
    };
    let both = serde_json::json!({"servers": [servers(&one), servers(&two)]}).to_string();
    let p = problems(&both);
    assert_eq!(p.len(), 1, "{p}");
    let extra = find(&p, "$.servers[1].listeners[0].filter_chains[0].filters[0]");
    assert!(extra.message.contains("exactly one"), "{extra}");

    let p = problems(
        r#"{"servers": [{"listeners": [{"address": "127.0.0.1:1",
            "filter_chains": [{"filters": [{"type": "grpc", "config": {}}]}]}]}]}"#,
    );
    find(
        &p,
        "$.servers[0].listeners[0].filter_chains[0].filters[0].config.grpc_config",
    );
}

#[test]
fn actuator_listener_rules() {
    let text = r#"{"servers": [{"listeners": [
        {"address": "127.0.0.1:34904", "stream_filters": [{"type": "actuator_filter"}],
         "filter_chains": [{"filters": [{"type": "grpc", "config": {"grpc_config": {}}}]}]},
        {"address": "127.0.0.1:34999", "stream_filters": [{"type": "actuator_filter"}]}]}]}"#;
    let p = problems(text);
    assert_eq!(p.len(), 2, "{p}");
    let same = find(&p, "$.servers[0].listeners[0].stream_filters");
    assert!(
        same.message.contains("cannot also serve the actuator"),
        "{same}"
    );
    let extra = find(&p, "$.servers[0].listeners[1]");
    assert!(extra.message.contains("at most one"), "{extra}");

    // Same address on two listeners.
    let text = r#"{"servers": [{"listeners": [
        {"address": "localhost:34904",
         "filter_chains": [{"filters": [{"type": "grpc", "config": {"grpc_config": {}}}]}]},
        {"address": "127.0.0.1:34904", "stream_filters": [{"type": "actuator_filter"}]}]}]}"#;
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p}");
    let same = find(&p, "$.servers[0].listeners[1].address");
    assert!(same.message.contains("also the gRPC"), "{same}");

    // A bad address on a listener serving both is reported once.
    let text = r#"{"servers": [{"listeners": [
        {"address": "myhost:34904", "stream_filters": [{"type": "actuator_filter"}],
         "filter_chains": [{"filters": [{"type": "grpc", "config": {"grpc_config": {}}}]}]}]}]}"#;
    let p = problems(text);
    assert_eq!(p.len(), 2, "{p}");
    let addr = find(&p, "$.servers[0].listeners[0].address");
    assert!(addr.message.contains("myhost"), "{addr}");
}

#[test]
fn upstream_layotto_shapes_parse() {
    // Upstream mosn/layotto configs/config_standalone.json / config_redis.json shape, with
    // backend types this crate does not check, MOSN extras, and upstream-only sections.
    let upstream = r#"{
  "servers": [
    {
      "default_log_path": "stdout",
      "default_log_level": "DEBUG",
      "routers": [{"router_config_name": "actuator_dont_need_router"}],
      "listeners": [
        {
          "name": "grpc",
          "address": "127.0.0.1:34904",
          "bind_port": true,
          "filter_chains": [
            {
              "filters": [
                {
                  "type": "grpc",
                  "config": {
                    "server_name": "runtime",
                    "grpc_config": {
                      "hellos": {
                        "quick_start_demo": {"type": "helloworld", "hello": "greeting"}
                      },
                      "config_store": {
                        "config_demo": {
                          "type": "etcd",
                          "address": ["127.0.0.1:2379"],
                          "timeout": "10"
                        }
                      },
                      "state": {
                        "state_demo": {
                          "type": "redis",
                          "metadata": {"redisHost": "localhost:6380", "redisPassword": ""}
                        }
                      },
                      "sequencer": {
                        "sequencer_demo": {
                          "type": "etcd",
                          "biggerThan": {"key666": 1000},
                          "metadata": {"endpoints": "localhost:2379", "segmentCacheEnable": "false"}
                        }
                      },
                      "lock": {
                        "lock_demo": {
                          "type": "redis",
                          "metadata": {"redisHost": "localhost:6380", "redisPassword": ""}
                        }
                      },
                      "pub_subs": {
                        "pub_subs_demo": {
                          "type": "redis",
                          "metadata": {"redisHost": "localhost:6380", "consumerID": "1"}
                        }
                      },
                      "secret_store": {
                        "secret_demo": {
                          "type": "local.file",
                          "metadata": {"secretsFile": "../../configs/secret/config_secret_local_file.json"}
                        },
                        "secret_demo1": {"type": "local.env", "metadata": {}}
                      },
                      "bindings": {
                        "bindings_demo": {"type": "http", "metadata": {"url": "https://mosn.io/layotto"}}
                      },
                      "custom_component": {
                        "helloworld": {"demo": {"type": "in-memory", "metadata": {}}}
                      },
                      "app": {"app_id": "app1", "grpc_callback_port": 9999}
                    }
                  }
                }
              ]
            }
          ],
          "stream_filters": [
            {"type": "flowControlFilter", "config": {"global_switch": true, "limit_key_type": "PATH",
              "rules": [{"resource": "/spec.proto.runtime.v1.Runtime/SayHello", "grade": 1, "threshold": 5}]}},
            {"type": "grpc_metric"}
          ]
        },
        {
          "name": "actuator",
          "address": "127.0.0.1:34999",
          "bind_port": true,
          "filter_chains": [
            {
              "filters": [
                {
                  "type": "proxy",
                  "config": {
                    "downstream_protocol": "Http1",
                    "upstream_protocol": "Http1",
                    "router_config_name": "actuator_dont_need_router"
                  }
                }
              ]
            }
          ],
          "stream_filters": [{"type": "actuator_filter"}]
        }
      ]
    }
  ],
  "tracing": {"enable": true, "driver": "SOFATracer",
    "config": {"generator": "mosntracing", "exporter": ["stdout"]}},
  "metrics": {"sinks": [{"type": "prometheus", "config": {"port": 34903}}]},
  "pprof": {"debug": true, "port_value": 34902}
}"#;
    let config = parse(upstream, "config_standalone.json").expect("upstream config parses");
    assert_eq!(config.grpc.to_string(), "127.0.0.1:34904");
    assert_eq!(config.actuator.map(|a| a.port()), Some(34999));
    assert_eq!(config.app.app_id, "app1");
    assert_eq!(config.app.grpc_callback_port, Some(9999));
    assert_eq!(config.components.len(), 9, "custom_component is ignored");
    let names: Vec<(Kind, &str, &str)> = config
        .components
        .iter()
        .map(|e| (e.kind, e.spec.name.as_str(), e.spec.type_.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            (Kind::Hello, "quick_start_demo", "helloworld"),
            (Kind::State, "state_demo", "redis"),
            (Kind::Lock, "lock_demo", "redis"),
            (Kind::Sequencer, "sequencer_demo", "etcd"),
            (Kind::Configuration, "config_demo", "etcd"),
            (Kind::PubSub, "pub_subs_demo", "redis"),
            (Kind::Secret, "secret_demo", "local.file"),
            (Kind::Secret, "secret_demo1", "local.env"),
            (Kind::Binding, "bindings_demo", "http"),
        ]
    );
    let seq = &config
        .of_kind(Kind::Sequencer)
        .next()
        .expect("sequencer")
        .spec;
    assert_eq!(seq.get("segmentCacheEnable"), Some("false"));
    assert_eq!(seq.get("biggerThan"), Some(r#"{"key666":1000}"#));
}

#[test]
fn check_components_collects_every_failure() {
    let config = standalone().expect("valid");
    assert_eq!(config.check_components(|_| Ok(())), Ok(()));
    let err = config
        .check_components(|e| match e.kind {
            Kind::State | Kind::Binding => Err(format!(
                "unknown {} component type '{}'",
                e.kind, e.spec.type_
            )),
            _ => Ok(()),
        })
        .expect_err("two failures");
    assert_eq!(err.len(), 2);
    assert_eq!(err.0[0].file, STANDALONE_SOURCE);
    assert_eq!(err.0[0].path, format!("{GRPC}.state.state_demo"));
    assert_eq!(err.0[0].message, "unknown state component type 'in-memory'");
    assert_eq!(err.0[1].path, format!("{GRPC}.bindings.http_demo"));
    assert!(err.to_string().contains('\n'));
}

#[test]
fn odd_component_names_are_quoted_in_paths() {
    let p = problems(&doc(
        "",
        "127.0.0.1:1",
        r#"{"secret_store": {"local.file": 1}}"#,
    ));
    find(&p, &format!(r#"{GRPC}.secret_store["local.file"]"#));
}

/// Issue 11, point 1: every part of a MOSN file is classified, never skipped silently.
#[test]
fn mosn_parts_are_classified_one_by_one() {
    let text = r#"{
      "servers": [{
        "default_log_path": "/var/log/layotto.log", "default_log_level": "DEBUG",
        "routers": [{"router_config_name": "r", "virtual_hosts": [{"name": "h"}]}],
        "listeners": [
          {"name": "grpc", "address": "127.0.0.1:34904",
           "filter_chains": [{"filters": [{"type": "grpc", "config": {"grpc_config": {
              "state": {"s": {"type": "in-memory", "metadata": [{"a": "1"}]}},
              "custom_component": {"helloworld": {"demo": {"type": "helloworld"}}}
           }}}]}],
           "stream_filters": [
             {"type": "flowControlFilter", "config": {"global_switch": true,
              "limit_key_type": "PATH", "rules": [
                {"resource": "/spec.proto.runtime.v1.Runtime/SayHello", "grade": 1, "threshold": 5}]}},
             {"type": "grpc_metric"}, {"type": "gzip"}]},
          {"name": "proxy", "address": "127.0.0.1:2046",
           "filter_chains": [{"filters": [{"type": "proxy"}]}]}
        ]}],
      "tracing": {"enable": true, "driver": "SOFATracer"},
      "metrics": {"sinks": [{"type": "prometheus", "config": {"port": 34903}}]},
      "pprof": {"debug": true, "port_value": 34902},
      "dynamic_resources": {"lds_config": {"ads": {}, "initial_fetch_timeout": "0s"}},
      "static_resources": {"clusters": []},
      "admin": {"address": "x"}
    }"#;
    let config = ok(text);
    let warned = |path: &str, words: &str| {
        let w = config
            .warnings
            .iter()
            .find(|w| w.path == path)
            .unwrap_or_else(|| panic!("no warning at {path}: {:#?}", config.warnings));
        assert!(w.message.contains(words), "{w}");
    };
    warned("$.tracing", "SOFATracer");
    assert_eq!(config.metrics_port, Some(34903));
    warned("$.pprof", "pprof");
    warned("$.dynamic_resources", "xDS");
    warned("$.admin", "unknown MOSN key");
    warned("$.servers[0].default_log_path", "stderr");
    warned("$.servers[0].routers", "routers");
    assert!(
        config
            .warnings
            .iter()
            .all(|w| w.path != "$.servers[0].listeners[0].stream_filters[1]"),
        "grpc_metric is served: {:#?}",
        config.warnings
    );
    warned("$.servers[0].listeners[0].stream_filters[2]", "\"gzip\"");
    warned(
        "$.servers[0].listeners[1].filter_chains[0].filters[0]",
        "\"proxy\" network filter is not served",
    );
    warned(
        &format!("{GRPC}.custom_component"),
        "Go code compiled into Layotto",
    );
    assert!(
        config
            .warnings
            .iter()
            .all(|w| w.path != "$.static_resources"),
        "an empty part says nothing: {:#?}",
        config.warnings
    );
    assert_eq!(config.log_level.as_deref(), Some("DEBUG"));
    assert_eq!(
        config.flow_control,
        Some(FlowControl {
            rules: vec![FlowRule {
                resource: "/spec.proto.runtime.v1.Runtime/SayHello".to_owned(),
                threshold: 5,
                window: std::time::Duration::from_secs(1),
            }]
        })
    );
    assert_eq!(
        config.components[0].spec.metadata["a"], "1",
        "array metadata"
    );
}

#[test]
fn sections_of_apis_not_served_yet_are_errors_naming_them() {
    let p = problems(&doc(
        "",
        "127.0.0.1:34904",
        r#"{"oss": {"o": {"type": "aws.oss"}}, "sms": {}, "files": {"f": {"type": "local"}},
            "file": {"f": {"type": "minio", "metadata": [{"a": 1}, {"b": 2}]}}}"#,
    ));
    let oss = find(&p, &format!("{GRPC}.oss"));
    assert!(
        oss.message
            .contains("object storage (oss) API is not supported yet"),
        "{oss}"
    );
    find(&p, &format!("{GRPC}.sms"));
    let files = find(&p, &format!("{GRPC}.files"));
    assert!(files.message.contains("\"file\""), "{files}");
    let many = find(&p, &format!("{GRPC}.file.f.metadata"));
    assert!(many.message.contains("2 entries"), "{many}");
    let bad_rule = problems(
        r#"{"servers": [{"listeners": [{"address": "127.0.0.1:1",
            "filter_chains": [{"filters": [{"type": "grpc", "config": {"grpc_config": {}}}]}],
            "stream_filters": [{"type": "flowControlFilter", "config": {"global_switch": true,
              "rules": [{"resource": "SayHello", "threshold": 0}]}}]}]}]}"#,
    );
    assert_eq!(bad_rule.0.len(), 2, "{bad_rule}");
    find(
        &bad_rule,
        "$.servers[0].listeners[0].stream_filters[0].config.rules[0].resource",
    );
    find(
        &bad_rule,
        "$.servers[0].listeners[0].stream_filters[0].config.rules[0].threshold",
    );
}

/// Issue 11, point 2: Layotto's `secret_ref` and `component_ref` (`config_ref_example.json`).
#[test]
fn secret_and_component_references_are_read() {
    let config = ok(&doc(
        "",
        "127.0.0.1:34904",
        r#"{"sequencer": {"seq": {"type": "redis", "metadata": {"redisHost": "h:1"},
              "secret_ref": [{"store_name": "local.file", "key": "db-user-pass:password",
                              "sub_key": "db-user-pass:password", "inject_as": "redisPassword"},
                             {"store_name": "local.env", "key": "TOKEN"}],
              "component_ref": {"config_store": "config_demo", "secret_store": "local.file"}}}}"#,
    ));
    let seq = &config.components[0];
    assert_eq!(
        seq.secret_refs,
        [
            SecretRef {
                metadata_key: "redisPassword".to_owned(),
                secret_name: "db-user-pass:password".to_owned(),
                secret_key: "db-user-pass:password".to_owned(),
                store: Some("local.file".to_owned()),
            },
            SecretRef {
                metadata_key: "TOKEN".to_owned(),
                secret_name: "TOKEN".to_owned(),
                secret_key: "TOKEN".to_owned(),
                store: Some("local.env".to_owned()),
            },
        ]
    );
    assert_eq!(
        seq.component_refs
            .iter()
            .map(|c| (c.kind, c.name.as_str()))
            .collect::<Vec<_>>(),
        [
            (Kind::Configuration, "config_demo"),
            (Kind::Secret, "local.file")
        ]
    );
    assert!(
        !seq.spec.metadata.contains_key("secret_ref"),
        "not metadata"
    );
    let p = problems(&doc(
        "",
        "127.0.0.1:34904",
        r#"{"state": {"s": {"type": "in-memory", "secret_ref": [{"key": "k", "bogus": 1}],
              "component_ref": {"lock": "l"}}}}"#,
    ));
    find(&p, &format!("{GRPC}.state.s.secret_ref[0].store_name"));
    find(&p, &format!("{GRPC}.state.s.secret_ref[0].bogus"));
    find(&p, &format!("{GRPC}.state.s.component_ref.lock"));
}
