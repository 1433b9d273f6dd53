//! The administrators' console in real Chromium, against the demo federation (a real
//! registry, two real gateways, the seeded catalog and its fusion rule): log in with the demo
//! administrator's certificate, grant a licence and meet the fusion conflict, grant it with an
//! expert review, see the gateway serve the licensee, suspend the licence and see the gateway
//! refuse; search the change log; switch to Chinese. Screenshots of the main pages are kept in
//! the artefacts folder ([`sluice_tests::browser::screenshots_dir`]).
//!
//! And without a browser: who may open the console, what a change without its CSRF token gets,
//! and that pages read without JavaScript.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fantoccini::elements::Element;
use fantoccini::Locator;
use serde_json::Value;
use sluice_net::registry_client::{RegistryClient, Reply};
use sluice_tests::browser::{skip_without_browser, Browser};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const FUSION_RULE: &str = "hydrant-adopters-and-enterprise-power";
const BANK: &str = "pudong-green-bank";
const SCENARIO: &str = "fire-hydrant-adoption";

struct Demo {
    demo: sluice::demo::Demo,
    _dir: tempfile::TempDir,
}

impl Demo {
    async fn start() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let demo = sluice::demo::start(&dir.path().join("demo")).await.unwrap();
        Demo { demo, _dir: dir }
    }

    fn m(&self, pointer: &str) -> &str {
        self.demo
            .manifest
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("demo.json has no {pointer}"))
    }

    fn path(&self, pointer: &str) -> PathBuf {
        PathBuf::from(self.m(pointer))
    }

    fn registry(&self) -> String {
        self.m("/registry/admin_url").to_owned()
    }

    fn admin(&self) -> (PathBuf, PathBuf) {
        (
            self.path("/registry/admin/cert"),
            self.path("/registry/admin/key"),
        )
    }

    /// A client of `url` with the certificate of `who` (a licensee of the demo, `admin`, or
    /// nobody).
    fn client(&self, url: &str, who: Option<&str>) -> RegistryClient {
        let ca = self.path("/ca");
        let pair = match who {
            None => None,
            Some("admin") => Some(self.admin()),
            Some(id) => {
                let certs = self.path("/registry/admin/cert").parent().unwrap().to_owned();
                Some((certs.join(format!("{id}.pem")), certs.join(format!("{id}.key"))))
            }
        };
        RegistryClient::new(url, &ca, pair.as_ref().map(|(c, k)| (c.as_path(), k.as_path()))).unwrap()
    }

    /// The fire bureau's gateway (it serves the hydrant register).
    fn fire_gateway(&self) -> String {
        self.m("/gateways/0/url").to_owned()
    }
}

async fn hydrants(bank: &RegistryClient) -> Reply {
    bank.send(
        http::Method::GET,
        "/v1/datasets/fire-hydrants/records?limit=2",
        None,
        &[("sluice-scenario", SCENARIO)],
    )
    .await
    .unwrap()
}

fn problem_type(r: &Reply) -> String {
    r.json()["type"]
        .as_str()
        .unwrap_or("")
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_owned()
}

/// Whether the catalog says dataset `id` is closed.
async fn closed(admin: &RegistryClient, id: &str) -> Value {
    let all = admin.get("/admin/datasets").await.unwrap().json();
    let entry = all.as_array().unwrap().iter().find(|d| d["spec"]["id"] == id);
    entry.unwrap_or_else(|| panic!("no dataset {id}"))["closed"].clone()
}

/// The CSRF token in a console page's forms.
fn csrf_token(html: &str) -> String {
    let field = "name=\"csrf\" value=\"";
    let at = html.find(field).expect("a CSRF field") + field.len();
    html[at..].split('"').next().unwrap().to_owned()
}

/// Posts a console form (URL-encoded `body`) as `client`, with `Origin: origin` if given.
async fn post_form(client: &RegistryClient, path: &str, body: String, origin: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
    client
        .send_bytes(
            http::Method::POST,
            path,
            bytes::Bytes::from(body),
            "application/x-www-form-urlencoded",
            &headers,
        )
        .await
        .unwrap()
}

/// Waits (bounded, 15 s) until the bank's hydrant request gets `status` (and problem `code`).
async fn gateway_answers(bank: &RegistryClient, status: u16, code: &str) -> Reply {
    let start = Instant::now();
    loop {
        let r = hydrants(bank).await;
        if r.status == status && (code.is_empty() || problem_type(&r) == code) {
            return r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the gateway still answers {} {} (want {status} {code})",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn css(b: &Browser, selector: &str) -> Element {
    match b
        .client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(selector))
        .await
    {
        Ok(e) => e,
        Err(e) => {
            let at = b.client.current_url().await.unwrap();
            let shot = b.screenshot("console-failed").await;
            panic!("no {selector} on {at} ({e}); see {}", shot.display())
        }
    }
}

/// The text of `selector`, found afresh when htmx swapped the element while it was read
/// (a stale element reference), for at most 10 s.
async fn text(b: &Browser, selector: &str) -> String {
    let start = Instant::now();
    loop {
        match css(b, selector).await.text().await {
            Ok(t) => return t,
            Err(e) if start.elapsed() > Duration::from_secs(10) => panic!("{selector}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Clicks `element` and waits (bounded, 10 s) until the page it was on is gone: the next
/// lookup must not find the old page's element of the same name.
async fn click_to_navigate(b: &Browser, element: Element) {
    let old = b.client.find(Locator::Css("html")).await.unwrap();
    element.click().await.unwrap();
    let start = Instant::now();
    while old.tag_name().await.is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the click did not leave the page"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn click_link(b: &Browser, label: &str) {
    let link = b
        .client
        .find(Locator::LinkText(label))
        .await
        .unwrap_or_else(|e| panic!("no link {label:?}: {e}"));
    click_to_navigate(b, link).await;
}

async fn submit(b: &Browser, button: &str) {
    click_to_navigate(b, css(b, button).await).await;
}

async fn type_into(b: &Browser, selector: &str, value: &str) {
    let e = css(b, selector).await;
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

async fn choose(b: &Browser, selector: &str, value: &str) {
    css(b, selector).await.select_by_value(value).await.unwrap();
}

/// axe-core, the accessibility rules engine, as `.ci/run` installs it from npm
/// (`npm install --prefix target/axe axe-core@4.14.1`).
fn axe_source() -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/axe/node_modules/axe-core/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(js) => Some(js),
        Err(e) if std::env::var_os("SLUICE_REQUIRE_CHROMIUM").is_some() => {
            panic!(
                "{}: {e} (npm install --prefix target/axe axe-core@4.14.1)",
                path.display()
            )
        }
        Err(_) => {
            eprintln!(
                "\n!!!!!!!!!! SKIPPED the console's accessibility checks: {} is missing \
                 (npm install --prefix target/axe axe-core@4.14.1) !!!!!!!!!!\n",
                path.display()
            );
            None
        }
    }
}

/// Runs axe-core's WCAG 2 A and AA rules on the current page; panics with every violation
/// found. (WebDriver runs the script outside the page's Content-Security-Policy.)
async fn accessible(b: &Browser, axe: Option<&str>, page: &str) {
    let Some(axe) = axe else { return };
    b.client
        .execute(&format!("{axe}\nreturn typeof axe;"), vec![])
        .await
        .unwrap();
    let found = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
                .then(r => done(r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,
                                                         nodes: v.nodes.map(n => n.html) }))))
                .catch(e => done([{ id: 'axe-failed', help: String(e) }]));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        found,
        Value::Array(vec![]),
        "accessibility violations on {page}: {found:#}"
    );
}

fn keep(shot: &Path) {
    let len = std::fs::metadata(shot).unwrap().len();
    assert!(len > 5_000, "{} is only {len} bytes", shot.display());
    eprintln!("screenshot: {}", shot.display());
}

/// The whole administrator's path through the console in Chromium, with a real gateway
/// enforcing what the console changed.
#[tokio::test]
async fn an_administrator_grants_meets_the_fusion_conflict_and_suspends_in_chromium() {
    if skip_without_browser("an_administrator_grants_meets_the_fusion_conflict_and_suspends_in_chromium") {
        return;
    }
    let demo = Demo::start().await;
    let registry = demo.registry();
    let bank = demo.client(&demo.fire_gateway(), Some(BANK));
    // The bank holds no hydrant licence yet.
    let before = hydrants(&bank).await;
    assert_eq!(before.status, 403, "{}", String::from_utf8_lossy(&before.body));

    let axe = axe_source();
    let (cert, key) = demo.admin();
    let b = Browser::launch(&demo.path("/ca"), &cert, &key)
        .await
        .unwrap_or_else(|e| panic!("launching Chromium: {e}"));

    // Log in: the certificate is the login.
    b.client.goto(&format!("{registry}/console/")).await.unwrap();
    assert_eq!(text(&b, "h1").await, "sluice registry console");
    assert!(text(&b, "header .who").await.contains("demo-admin"));
    keep(&b.screenshot("console-start").await);
    accessible(&b, axe.as_deref(), "console-start").await;

    // Two clicks to the grant form: Licences, then Grant a licence.
    click_link(&b, "Licences").await;
    assert!(text(&b, "#results caption").await.starts_with("Licences"));
    keep(&b.screenshot("console-licences").await);
    accessible(&b, axe.as_deref(), "console-licences").await;
    click_link(&b, "Grant a licence").await;
    assert_eq!(text(&b, "h1").await, "Grant a licence");

    choose(&b, "#licensee", BANK).await;
    choose(&b, "#dataset", "fire-hydrants").await;
    // htmx puts the dataset's fields and grades beside the form.
    let start = Instant::now();
    while !text(&b, "#dataset-fields").await.contains("adopter_mobile") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no dataset fields shown"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    choose(&b, "#scenario", SCENARIO).await;
    type_into(
        &b,
        "#fields",
        "id=clear\ndistrict=clear\nadopter_name=partial:first=1,last=0\nadopter_mobile=partial:first=3,last=4",
    )
    .await;
    type_into(&b, "#requests_per_day", "500").await;
    let until = css(&b, "#valid_until").await;
    until.send_keys("06302030").await.unwrap();
    assert_eq!(until.prop("value").await.unwrap().as_deref(), Some("2030-06-30"));
    type_into(
        &b,
        "#reason",
        "pilot: green credit for hydrant adopters' businesses",
    )
    .await;
    submit(&b, "#do-grant").await;

    // The fusion conflict, beside the expert-review field, with what was typed kept.
    let conflict = text(&b, "#fusion-conflict").await;
    assert!(
        conflict.contains("fusion-conflict") && conflict.contains(FUSION_RULE),
        "{conflict}"
    );
    let review = css(&b, "#expert_review").await;
    assert_eq!(
        review.attr("aria-invalid").await.unwrap().as_deref(),
        Some("true")
    );
    assert_eq!(
        css(&b, "#reason").await.prop("value").await.unwrap().as_deref(),
        Some("pilot: green credit for hydrant adopters' businesses")
    );
    keep(&b.screenshot("console-fusion-conflict").await);
    accessible(&b, axe.as_deref(), "console-fusion-conflict").await;
    // Nothing was granted.
    assert_eq!(hydrants(&bank).await.status, 403);

    review.send_keys("ER-2026-117").await.unwrap();
    submit(&b, "#do-grant").await;
    assert_eq!(text(&b, ".notice").await, "Licence granted.");
    let url = b.client.current_url().await.unwrap();
    let licence = url.path().rsplit('/').next().unwrap().to_owned();
    assert!(licence.starts_with("lic-"), "{url}");
    assert_eq!(text(&b, "dd.state strong").await, "active");
    keep(&b.screenshot("console-licence-granted").await);

    // The admin API holds what the form said.
    let admin = demo.client(&registry, Some("admin"));
    let lic = admin
        .get(&format!("/admin/licences/{licence}"))
        .await
        .unwrap()
        .json();
    assert_eq!(lic["licensee"], BANK);
    assert_eq!(lic["expert_review"], "ER-2026-117");
    assert_eq!(lic["quota"]["requests_per_day"], 500);
    assert_eq!(lic["fields"]["adopter_mobile"]["rule"], "partial");
    assert_eq!(lic["valid_until"], "2030-06-30T00:00:00Z");

    // A real gateway serves the bank now, masked as granted.
    let served = gateway_answers(&bank, 200, "").await;
    let rows = served.json();
    let first = &rows.as_array().unwrap()[0];
    assert!(
        first.get("street").is_none(),
        "a field the licence does not allow left: {first}"
    );

    // Suspend, with a reason, from the licence's page.
    type_into(&b, "#reason-suspend", "adopter complaint under review").await;
    submit(&b, "#do-suspend").await;
    assert_eq!(text(&b, ".notice").await, "Licence suspended.");
    assert!(text(&b, "dd.state")
        .await
        .contains("adopter complaint under review"));
    keep(&b.screenshot("console-licence-suspended").await);
    accessible(&b, axe.as_deref(), "console-licence-suspended").await;

    // …and the gateway refuses.
    gateway_answers(&bank, 403, "licence-suspended").await;

    // The emergency switch, from the catalog page: close the hydrant register with a reason,
    // and the gateway refuses even a licensee in good standing; reopen it.
    let acme = demo.client(&demo.fire_gateway(), Some("acme-insurance"));
    assert_eq!(hydrants(&acme).await.status, 200);
    click_link(&b, "Datasets").await;
    type_into(
        &b,
        "#datasets-fire-hydrants-close",
        "drill: source under maintenance",
    )
    .await;
    submit(&b, "form[action='/console/datasets/fire-hydrants/close'] button").await;
    assert_eq!(text(&b, ".notice").await, "Recorded.");
    assert!(css(&b, "#datasets-fire-hydrants-open")
        .await
        .is_displayed()
        .await
        .is_ok());
    keep(&b.screenshot("console-datasets").await);
    accessible(&b, axe.as_deref(), "console-datasets").await;
    gateway_answers(&acme, 503, "dataset-closed").await;
    type_into(&b, "#datasets-fire-hydrants-open", "drill over").await;
    submit(&b, "form[action='/console/datasets/fire-hydrants/open'] button").await;
    gateway_answers(&acme, 200, "").await;

    // The change log, searched for this licence (htmx updates the table as one types).
    click_link(&b, "Change log").await;
    type_into(&b, "#q", &licence).await;
    let start = Instant::now();
    loop {
        let rows = text(&b, "#results").await;
        if rows.contains("licence.suspend") && !rows.contains("licensee.add") {
            assert!(
                rows.contains("licence.grant") && rows.contains("adopter complaint under review"),
                "{rows}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the search did not narrow the log: {rows}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    keep(&b.screenshot("console-change-log").await);
    accessible(&b, axe.as_deref(), "console-change-log").await;

    // The federation's health, and the same console in Chinese.
    click_link(&b, "Gateways").await;
    let health = text(&b, "#results").await;
    assert!(
        health.contains("shanghai-fire") && health.contains("shanghai-utilities"),
        "{health}"
    );
    keep(&b.screenshot("console-gateways").await);
    accessible(&b, axe.as_deref(), "console-gateways").await;
    click_link(&b, "中文").await;
    assert_eq!(text(&b, "h1").await, "联邦运行状况");
    click_link(&b, "许可").await;
    assert!(text(&b, "#results caption").await.starts_with("许可"));
    // States read in the page's language too (the suspended licence).
    assert!(text(&b, "#results").await.contains("已暂停"));
    keep(&b.screenshot("console-licences-zh").await);
    accessible(&b, axe.as_deref(), "console-licences-zh").await;

    b.close().await;
    demo.demo.stop().await;
}

/// The console's door without a browser: admin certificates only, changes only with the
/// page's CSRF token and from the console's own origin, pages readable as plain HTML.
#[tokio::test]
async fn the_console_is_for_administrators_and_refuses_forged_changes() {
    let demo = Demo::start().await;
    let registry = demo.registry();
    let admin = demo.client(&registry, Some("admin"));

    let nobody = demo.client(&registry, None).get("/console/").await.unwrap();
    assert_eq!(
        (nobody.status.as_u16(), problem_type(&nobody).as_str()),
        (401, "unauthenticated")
    );
    let licensee = demo
        .client(&registry, Some(BANK))
        .get("/console/licences")
        .await
        .unwrap();
    assert_eq!(
        (licensee.status.as_u16(), problem_type(&licensee).as_str()),
        (403, "forbidden")
    );

    // Reading needs no script: the licence table is in the HTML.
    let page = admin
        .get("/console/licences?licensee=acme-insurance")
        .await
        .unwrap();
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(&page.body).into_owned();
    assert!(
        html.contains("lic-acme-adoption") && !html.contains("lic-maps-overlay"),
        "{html}"
    );
    let csp = page
        .headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");

    let page = admin.get("/console/licences/lic-acme-adoption").await.unwrap();
    let token = csrf_token(&String::from_utf8_lossy(&page.body));
    const SUSPEND: &str = "/console/licences/lic-acme-adoption/suspend";
    for (body, origin) in [
        ("reason=forged".to_owned(), None),
        ("reason=forged&csrf=AAAA".to_owned(), None),
        (
            format!("reason=forged&csrf={token}"),
            Some("https://evil.example"),
        ),
    ] {
        let r = post_form(&admin, SUSPEND, body.clone(), origin).await;
        assert_eq!(
            (r.status.as_u16(), problem_type(&r).as_str()),
            (403, "csrf-rejected"),
            "{body} {origin:?}"
        );
    }
    let lic = admin
        .get("/admin/licences/lic-acme-adoption")
        .await
        .unwrap()
        .json();
    assert_eq!(lic["status"]["state"], "active", "a refused form changed nothing");

    // The page's own token, from the console's origin, goes through (303 to the licence).
    let own = format!("https://{}", url::Url::parse(&registry).unwrap().authority());
    // A blank reason is the admin API's refusal, shown on the licence's page.
    let r = post_form(&admin, SUSPEND, format!("reason=+&csrf={token}"), Some(&own)).await;
    assert_eq!(r.status, 422);
    let html = String::from_utf8_lossy(&r.body).into_owned();
    assert!(
        html.contains("<code>invalid</code>") && html.contains("a reason is required"),
        "{html}"
    );
    let r = post_form(
        &admin,
        SUSPEND,
        format!("reason=checked&csrf={token}"),
        Some(&own),
    )
    .await;
    assert_eq!(r.status, 303, "{}", String::from_utf8_lossy(&r.body));
    let lic = admin
        .get("/admin/licences/lic-acme-adoption")
        .await
        .unwrap()
        .json();
    assert_eq!(lic["status"]["state"], "suspended");
    let changes = admin.get("/admin/changes").await.unwrap().json();
    let last = changes.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (
            last["admin"].as_str(),
            last["action"].as_str(),
            last["reason"].as_str()
        ),
        (Some("demo-admin"), Some("licence.suspend"), Some("checked"))
    );
    demo.demo.stop().await;
}

/// The applications queue: an open application's page is the grant form with the
/// application's licensee, dataset, scenario and asked fields shown, and sending it approves
/// the application through `POST /admin/applications/<id>/approve` (the fusion rule applies
/// as to any grant).
#[tokio::test]
async fn an_application_is_approved_from_the_console() {
    let demo = Demo::start().await;
    let registry = demo.registry();
    let admin = demo.client(&registry, Some("admin"));
    let apps = admin.get("/admin/applications").await.unwrap().json();
    let app = apps
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["status"] == "open")
        .expect("the demo files an application")
        .clone();
    let id = app["id"].as_str().unwrap();

    let queue = String::from_utf8_lossy(&admin.get("/console/applications").await.unwrap().body).into_owned();
    let link = format!("/console/licences/new?application={id}");
    assert!(queue.contains(&format!("href=\"{link}\"")), "{queue}");
    let page = admin.get(&link).await.unwrap();
    assert_eq!(page.status, 200);
    let form = String::from_utf8_lossy(&page.body).into_owned();
    assert!(
        form.contains(&format!("name=\"application\" value=\"{id}\"")),
        "{form}"
    );
    assert!(
        form.contains(app["purpose"].as_str().unwrap()),
        "the application is shown: {form}"
    );
    let token = csrf_token(&form);

    let fields: Vec<String> = app["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("{}=partial:first=1,last=0", f.as_str().unwrap()))
        .collect();
    let own = format!("https://{}", url::Url::parse(&registry).unwrap().authority());
    let body = |extra: &str| {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("csrf", &token)
            .append_pair("application", id)
            .append_pair("fields", &fields.join("\n"))
            .append_pair("reason", "meets the agreement")
            .finish()
            + extra
    };
    // The bank holds the utilities register, and adopters' names complete the demo's fusion
    // rule: the approval is refused as a grant would be, shown in the form, until it carries
    // an expert review.
    let first = post_form(&admin, "/console/licences", body(""), Some(&own)).await;
    assert_eq!(first.status, 409);
    let html = String::from_utf8_lossy(&first.body).into_owned();
    assert!(html.contains("id=\"fusion-conflict\""), "{html}");
    let second = post_form(
        &admin,
        "/console/licences",
        body("&expert_review=ER-2026-200"),
        Some(&own),
    )
    .await;
    assert_eq!(second.status, 303, "{}", String::from_utf8_lossy(&second.body));
    let location = second.headers["location"].to_str().unwrap().to_owned();
    let decided = admin
        .get(&format!("/admin/applications/{id}"))
        .await
        .unwrap()
        .json()["application"]
        .clone();
    assert_eq!(decided["status"], "approved", "{decided}");
    let licence = decided["licence"].as_str().unwrap();
    assert_eq!(location, format!("/console/licences/{licence}?done=granted"));
    let lic = admin
        .get(&format!("/admin/licences/{licence}"))
        .await
        .unwrap()
        .json();
    assert_eq!(
        (lic["licensee"].clone(), lic["dataset"].clone()),
        (app["licensee"].clone(), app["dataset"].clone())
    );
    demo.demo.stop().await;
}

/// An administrator limited to one agency reads every page but changes only its agency's
/// data: the console asks the admin API as that administrator, so the API's scope decides,
/// and the refusal shows on the page with its status.
#[tokio::test]
async fn an_agency_administrator_changes_only_its_own_data_in_the_console() {
    let demo = Demo::start().await;
    let registry = demo.registry();
    let admin = demo.client(&registry, Some("admin"));
    let ca = sluice_certs::Ca::open(demo.path("/ca").parent().unwrap()).unwrap();
    let certs = demo.path("/registry/admin/cert").parent().unwrap().to_owned();
    sluice_certs::issue_admin(&ca, "utilities-officer", 5)
        .unwrap()
        .write_to(&certs, "utilities-officer")
        .unwrap();
    let limit = serde_json::json!({
        "id": "utilities-officer", "agency": "utilities-bureau", "reason": "the bureau's data officer"
    });
    assert_eq!(admin.post("/admin/admins", &limit).await.unwrap().status, 201);
    let officer = demo.client(&registry, Some("utilities-officer"));
    let own = format!("https://{}", url::Url::parse(&registry).unwrap().authority());

    let page = officer.get("/console/datasets").await.unwrap();
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(&page.body).into_owned();
    assert!(
        html.contains("fire-hydrants") && html.contains("enterprise-utilities"),
        "{html}"
    );
    let token = csrf_token(&html);
    let body = format!("reason=not+mine&csrf={token}");
    let r = post_form(
        &officer,
        "/console/datasets/fire-hydrants/close",
        body,
        Some(&own),
    )
    .await;
    assert_eq!(r.status, 403);
    let html = String::from_utf8_lossy(&r.body).into_owned();
    assert!(
        html.contains("role=\"alert\"") && html.contains("<code>forbidden</code>"),
        "{html}"
    );
    assert_eq!(
        closed(&admin, "fire-hydrants").await,
        false,
        "another agency's dataset is unchanged"
    );

    let body = format!("reason=maintenance&csrf={token}");
    let r = post_form(
        &officer,
        "/console/datasets/enterprise-utilities/close",
        body,
        Some(&own),
    )
    .await;
    assert_eq!(r.status, 303, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(closed(&admin, "enterprise-utilities").await, true);
    let last = admin
        .get("/admin/changes")
        .await
        .unwrap()
        .json()
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (last["admin"].as_str(), last["action"].as_str()),
        (Some("utilities-officer"), Some("dataset.close"))
    );
    demo.demo.stop().await;
}
