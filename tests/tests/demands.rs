//! Issue 16, item 5: the public demand list end to end (real mTLS on loopback, SQLite and
//! PostgreSQL): a demand filed twice is counted twice and answered once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use sluice::admin::AdminCommand;
use sluice::demand_cli::{AnswerArgs, DemandCommand};
use sluice_net::registry_client::Reply;
use sluice_tests::registry_harness::{Backend, Reg};

macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(super::Backend::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$name(super::Backend::Postgres).await
            }
        }
    };
}

/// The private text of the filings: never in a public answer.
const PRIVATE: [&str; 7] = [
    "rider@example.com",
    "mapper@example.org",
    "fleet@example.net",
    "route planning",
    "accessibility map",
    "alice",
    "bob",
];

fn text(r: &Reply) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn assert_public(r: &Reply) {
    let t = text(r);
    for p in PRIVATE {
        assert!(!t.contains(p), "{p} in public output {t}");
    }
}

/// The value of the element with `id` in a page.
fn element(page: &str, id: &str) -> String {
    page.split(&format!("id=\"{id}\">"))
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_else(|| panic!("no #{id} in {page}"))
        .to_owned()
}

async fn file(reg: &Reg, body: Value) -> Reply {
    reg.anon.post("/v1/demands", &body).await.unwrap()
}

fn entry<'a>(list: &'a Value, id: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .unwrap_or_else(|| panic!("no entry {id} in {list}"))
}

async fn a_demand_filed_twice_is_counted_twice_and_answered_once(b: Backend) {
    let reg = Reg::start(b).await;
    let spec = json!({
        "id": "hydrants", "title": "Fire hydrants", "owner": "fire-bureau", "update_frequency": "daily",
        "grades": { "personal": "non_anonymous_non_sensitive" },
        "fields": [ { "name": "id" }, { "name": "district" },
                    { "name": "adopter_mobile", "grades": { "personal": "non_anonymous_non_sensitive" } } ],
    });
    let r = reg
        .admin
        .post(
            "/admin/datasets",
            &json!({ "dataset": spec, "agency": "fire-bureau", "reason": "catalog" }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.json());

    // Filed twice, as JSON and through the form, written differently: one entry, counted twice.
    let r = file(
        &reg,
        json!({ "kind": "open-dataset", "dataset": "Bus  Stop Locations ", "why": "route planning app",
                "contact": "rider@example.com" }),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let bus = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["count"], 1);
    assert_eq!(r.json()["status_url"], format!("/v1/demands/{bus}"));
    assert_eq!(r.headers["location"], format!("/v1/demands/{bus}").as_str());
    let form = "kind=open-dataset&dataset=+bus+++stop+LOCATIONS&fields=&why=accessibility+map\
                &contact=mapper%40example.org";
    let r = reg
        .anon
        .send_bytes(
            http::Method::POST,
            "/v1/demands",
            bytes::Bytes::from(form),
            "application/x-www-form-urlencoded",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", text(&r));
    let page = text(&r);
    assert_eq!(element(&page, "demand-id"), bus);
    assert_eq!(element(&page, "count"), "2");
    assert!(r.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));

    // More fields: the same set in another order, case and with a repeat joins; another set
    // is another entry.
    let more = |dataset: &str, fields: Value| {
        json!({ "kind": "more-fields", "dataset": dataset, "fields": fields, "why": "route planning",
                "contact": "fleet@example.net" })
    };
    let r = file(&reg, more("hydrants", json!(["install_date", "district"]))).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let fields = r.json()["id"].as_str().unwrap().to_owned();
    let r = file(
        &reg,
        more(" hydrants", json!(["District", "Install_Date ", "district"])),
    )
    .await;
    assert_eq!(
        (r.json()["id"].as_str(), &r.json()["count"]),
        (Some(fields.as_str()), &json!(2))
    );
    let r = file(&reg, more("hydrants", json!(["install_date"]))).await;
    let other = r.json()["id"].as_str().unwrap().to_owned();
    assert_ne!(other, fields);
    assert_eq!(r.json()["count"], 1);

    // Bad filings: clear problems, nothing stored.
    for (body, want) in [
        (
            json!({ "kind": "open-dataset", "dataset": "bus stops", "why": " \n" }),
            "invalid",
        ),
        (
            json!({ "kind": "more-fields", "dataset": "hydrants", "why": "x" }),
            "invalid",
        ),
        (more("nope", json!(["a"])), "invalid"),
        // Without `why` the body does not match the document: 400, as every route answers.
        (
            json!({ "kind": "open-dataset", "dataset": "bus stops" }),
            "bad-request",
        ),
    ] {
        let r = file(&reg, body.clone()).await;
        assert_eq!(r.problem().as_deref(), Some(want), "{body}: {:?}", r.json());
        assert_eq!(r.headers["content-type"], "application/problem+json", "{body}");
    }

    // Administrators only.
    let r = reg.anon.get("/admin/demands").await.unwrap();
    assert_eq!(r.status, 401);
    let r = reg.licensee.get("/admin/demands").await.unwrap();
    assert_eq!(r.status, 403);
    let answer = json!({ "status": "planned", "date": "2099-03-01", "reason": "in the 2027 open data list" });
    let path = format!("/admin/demands/{bus}/answer");
    let r = reg.licensee.post(&path, &answer).await.unwrap();
    assert_eq!(r.status, 403);
    let r = reg.anon.post(&path, &answer).await.unwrap();
    assert_eq!(r.status, 401);
    let list = reg.admin.get("/admin/demands").await.unwrap().json();
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");
    let requests = &entry(&list, &bus)["requests"];
    assert_eq!(requests.as_array().unwrap().len(), 2);
    assert_eq!(requests[0]["contact"], "rider@example.com");
    assert_eq!(requests[1]["why"], "accessibility map");

    // Answers that break the rules, and an unknown entry: refused, nothing recorded.
    for (body, want) in [
        (json!({ "status": "planned", "reason": "soon" }), "invalid"),
        (
            json!({ "status": "planned", "date": "2000-01-01", "reason": "soon" }),
            "invalid",
        ),
        (json!({ "status": "refused", "reason": " " }), "invalid"),
    ] {
        let r = reg.admin.post(&path, &body).await.unwrap();
        assert_eq!(r.problem().as_deref(), Some(want), "{body}: {:?}", r.json());
    }
    let r = reg
        .admin
        .post("/admin/demands/dem-nope/answer", &answer)
        .await
        .unwrap();
    assert_eq!(r.problem().as_deref(), Some("not-found"));

    // An agency's administrator answers the demands about its agency's data only: a title
    // names no catalog entry, so it is for city-wide administrators.
    let r = reg
        .admin
        .post(
            "/admin/admins",
            &json!({ "id": "bob", "agency": "fire-bureau", "reason": "fire bureau's data officer" }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.json());
    let bob = reg.client("admin", "bob");
    let seen = bob.get("/admin/demands").await.unwrap().json();
    let mut ids: Vec<&str> = seen
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut want = [fields.as_str(), other.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want);
    assert_eq!(
        bob.get(&format!("/admin/demands/{bus}")).await.unwrap().status,
        403
    );
    assert_eq!(bob.post(&path, &answer).await.unwrap().status, 403);
    let r = bob
        .post(
            &format!("/admin/demands/{other}/answer"),
            &json!({ "status": "refused", "reason": "not kept apart from other fields" }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.json());

    // Answered once: an admin change that moves no snapshot.
    let r = reg.admin.post(&path, &answer).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.headers["sluice-revision"], "0");
    assert_eq!(r.json()["answer"]["answered_by"], "alice");
    let answers: Vec<Value> = reg
        .changes()
        .await
        .into_iter()
        .filter(|c| c["action"] == "demand.answer" && c["target"] == bus.as_str())
        .collect();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(
        (&answers[0]["target"], &answers[0]["admin"]),
        (&json!(bus), &json!("alice"))
    );
    let reason = answers[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("planned 2099-03-01") && reason.contains("in the 2027 open data list"),
        "{reason}"
    );

    // The public list: counts and the answer, the most requested first; no contact, no why.
    let r = reg.anon.get("/demands").await.unwrap();
    assert_eq!(r.status, 200);
    assert_public(&r);
    let list = r.json();
    assert_eq!(list.as_array().unwrap().len(), 3);
    let e = entry(&list, &bus);
    assert_eq!(
        (&e["kind"], &e["title"], &e["dataset"], &e["count"], &e["status"]),
        (
            &json!("open-dataset"),
            &json!("Bus Stop Locations"),
            &Value::Null,
            &json!(2),
            &json!("planned")
        )
    );
    assert_eq!(
        (&e["answer"]["date"], &e["answer"]["reason"]),
        (&json!("2099-03-01"), &json!("in the 2027 open data list"))
    );
    assert_eq!(e["first_filed_on"].as_str().unwrap().len(), 10);
    let e = entry(&list, &fields);
    assert_eq!(
        (
            &e["dataset"],
            &e["fields"],
            &e["count"],
            &e["status"],
            &e["answer"]
        ),
        (
            &json!("hydrants"),
            &json!(["district", "install_date"]),
            &json!(2),
            &json!("open"),
            &Value::Null
        )
    );
    assert_eq!(
        (&entry(&list, &other)["count"], &entry(&list, &other)["status"]),
        (&json!(1), &json!("refused"))
    );
    assert_eq!(list[2]["id"], other.as_str(), "the most requested first: {list}");
    let one = reg.anon.get(&format!("/v1/demands/{bus}")).await.unwrap();
    assert_public(&one);
    assert_eq!(
        (&one.json()["count"], &one.json()["status"]),
        (&json!(2), &json!("planned"))
    );
    // As HTML, by Accept or by format=html.
    for (path, accept) in [("/demands", "text/html"), ("/demands?format=html", "*/*")] {
        let r = reg
            .anon
            .send(http::Method::GET, path, None, &[("accept", accept)])
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert!(r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(r.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'"));
        assert_public(&r);
        let page = text(&r);
        for shown in [
            "Bus Stop Locations",
            "<td>2</td>",
            "planned",
            "2099-03-01",
            "in the 2027 open data list",
            "district, install_date",
            "href=\"/demands/new\"",
        ] {
            assert!(page.contains(shown), "{shown} not in {page}");
        }
    }
    let r = reg.anon.get("/demands?format=pdf").await.unwrap();
    assert_eq!(r.problem().as_deref(), Some("bad-request"));
    // The form, and the catalog page linking to the list and the form.
    let r = reg
        .anon
        .send(
            http::Method::GET,
            "/demands/new",
            None,
            &[("accept", "text/html")],
        )
        .await
        .unwrap();
    assert!(text(&r).contains("action=\"/v1/demands\""));
    assert!(!text(&r).contains("<script"));
    let r = reg
        .anon
        .send(http::Method::GET, "/catalog", None, &[("accept", "text/html")])
        .await
        .unwrap();
    assert!(text(&r).contains("href=\"/demands\"") && text(&r).contains("href=\"/demands/new\""));

    // The CLI: the list by status, one entry, and an answer replaced (audited again).
    let out = reg
        .admin_cli(AdminCommand::Demand(DemandCommand::List {
            status: Some("planned".into()),
        }))
        .await;
    assert!(out.ok, "{}", out.text);
    let planned: Value = serde_json::from_str(&out.text).unwrap();
    assert_eq!(planned.as_array().unwrap().len(), 1);
    assert_eq!(planned[0]["id"], bus.as_str());
    let out = reg
        .admin_cli(AdminCommand::Demand(DemandCommand::Show { id: fields.clone() }))
        .await;
    assert!(out.ok && out.text.contains("fleet@example.net"), "{}", out.text);
    let out = reg
        .admin_cli(AdminCommand::Demand(DemandCommand::Answer(AnswerArgs {
            id: bus.clone(),
            status: "opened".into(),
            date: None,
            reason: "published as bus-stops".into(),
        })))
        .await;
    assert!(out.ok, "{}", out.text);
    let e = reg.anon.get(&format!("/v1/demands/{bus}")).await.unwrap().json();
    assert_eq!(
        (&e["status"], &e["answer"]["reason"], &e["answer"]["date"]),
        (&json!("opened"), &json!("published as bus-stops"), &Value::Null)
    );
    let n = reg
        .changes()
        .await
        .iter()
        .filter(|c| c["action"] == "demand.answer" && c["target"] == bus.as_str())
        .count();
    assert_eq!(n, 2);

    // The per-address rate: the burst spent (refused filings count), 429 with Retry-After.
    let mut refused = None;
    for i in 0..(sluice_registry::objection_api::FILING_BURST * 2) {
        let r = file(
            &reg,
            json!({ "kind": "open-dataset", "dataset": format!("data {i}"), "why": "x" }),
        )
        .await;
        if r.status == 429 {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status, 201, "{:?}", r.json());
    }
    let r = refused.expect("the filing rate never refused");
    assert_eq!(r.problem().as_deref(), Some("rate-limited"));
    assert!(r.headers.contains_key("retry-after"));
    reg.stop().await;
}
both!(a_demand_filed_twice_is_counted_twice_and_answered_once);
