//! Plausible fleet data: users, groups, client machines, VDA hosts,
//! delivery groups, published applications, and the session events a
//! working day produces. `srs simulate` sends it over HTTP; `srs serve
//! --demo` writes it through the application layer.
//!
//! # Determinism
//!
//! Everything derives from one `seed`. A session is a pure function of
//! `(seed, index)` ([`Population::session`]), so the plan does not depend
//! on which task happens to generate it first: the same seed gives the
//! same users, hosts, applications and event sequence in every run.
//! Event ids derive from the recording id and the event's index
//! ([`event_id`]), so replaying a plan is idempotent while a second run
//! (new servers, so new recording ids) stores fresh events.

use std::collections::BTreeMap;

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use srs_domain::model::SessionEventType;
use uuid::Uuid;

/// The Windows domain of the generated accounts.
pub const DOMAIN: &str = "CORP";

/// A delivery group: its VDA hosts and published applications.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryGroup {
    pub name: &'static str,
    /// Prefix of the group's VDA host names.
    pub host_prefix: &'static str,
    pub hosts: u32,
    /// Published applications (executables) its sessions start.
    pub applications: &'static [&'static str],
    /// Departments whose users work on it.
    pub departments: &'static [&'static str],
}

/// The delivery groups of the generated fleet. The recording policy of
/// [`crate::simulate::policies`] names them.
pub const DELIVERY_GROUPS: [DeliveryGroup; 5] = [
    DeliveryGroup {
        name: "Finance Desktops",
        host_prefix: "VDA-FIN",
        hosts: 6,
        applications: &["excel.exe", "outlook.exe", "saplogon.exe", "msedge.exe"],
        departments: &["Finance"],
    },
    DeliveryGroup {
        name: "Office Apps",
        host_prefix: "VDA-OFF",
        hosts: 10,
        applications: &[
            "winword.exe",
            "excel.exe",
            "outlook.exe",
            "teams.exe",
            "msedge.exe",
        ],
        departments: &["HR", "Sales", "Finance", "Support"],
    },
    DeliveryGroup {
        name: "Engineering Workstations",
        host_prefix: "VDA-ENG",
        hosts: 8,
        applications: &["code.exe", "chrome.exe", "powershell.exe", "teams.exe"],
        departments: &["Engineering"],
    },
    DeliveryGroup {
        name: "Call Center",
        host_prefix: "VDA-CC",
        hosts: 6,
        applications: &["crmclient.exe", "chrome.exe", "softphone.exe"],
        departments: &["Support", "Sales"],
    },
    DeliveryGroup {
        name: "Contractor Desktops",
        host_prefix: "VDA-EXT",
        hosts: 4,
        applications: &["chrome.exe", "winword.exe", "notepad.exe"],
        departments: &["Contractors"],
    },
];

const FIRST_NAMES: [&str; 24] = [
    "anna", "ben", "carla", "david", "emma", "felix", "grace", "hugo", "irene", "jonas", "karin",
    "leo", "maria", "noah", "olga", "paul", "quinn", "rosa", "sven", "tina", "umar", "vera", "wim",
    "yara",
];
const LAST_NAMES: [&str; 24] = [
    "adler", "berger", "costa", "dubois", "eriksen", "fischer", "garcia", "hansen", "ivanova",
    "jansen", "keller", "lopez", "meyer", "novak", "olsen", "petrov", "quist", "rossi", "schmidt",
    "tanaka", "ulrich", "vogel", "weber", "zimmer",
];
const DEPARTMENTS: [&str; 6] = [
    "Finance",
    "HR",
    "Sales",
    "Support",
    "Engineering",
    "Contractors",
];

const BENIGN_SITES: [&str; 10] = [
    "https://intranet.corp.example/news",
    "https://outlook.office.com/mail/inbox",
    "https://learn.microsoft.com/en-us/windows/",
    "https://github.com/corp/payments-service/pulls",
    "https://stackoverflow.com/questions/tagged/rust",
    "https://corp.my.salesforce.com/lightning/page/home",
    "https://servicedesk.corp.example/tickets",
    "https://www.wikipedia.org/",
    "https://hr.corp.example/leave",
    "https://docs.corp.example/handbook",
];
/// Hosts the detection policy flags (file sharing, paste sites).
pub const RISKY_SITE_HOSTS: [&str; 3] = ["www.dropbox.com", "wetransfer.com", "pastebin.com"];
const RISKY_SITES: [&str; 3] = [
    "https://www.dropbox.com/home/upload",
    "https://wetransfer.com/",
    "https://pastebin.com/raw/x8Kq2LmZ",
];
const BROWSERS: [&str; 2] = ["msedge.exe", "chrome.exe"];
const DOCUMENTS: [&str; 10] = [
    "Q3 Forecast.xlsx",
    "Board Minutes.docx",
    "Customer List.xlsx",
    "Roadmap 2025.pptx",
    "Invoice-48213.pdf",
    "notes.txt",
    "Travel Expenses.xlsx",
    "Contract Draft v2.docx",
    "build.log",
    "Org Chart.vsdx",
];
/// The share whose files the detection policy flags.
pub const CONFIDENTIAL_SHARE: &str = r"\\fs01\Finance\Confidential";
const USB_DEVICES: [&str; 3] = [
    "Kingston DataTraveler 3.0",
    "SanDisk Cruzer Blade",
    "WD My Passport 25E2",
];
const PRINTERS: [&str; 2] = [r"\\print01\Floor2-HP-M479", r"\\print01\Floor3-Canon-C5535"];
/// Applications the detection policy watches and flags when started.
pub const ADMIN_TOOLS: [&str; 3] = ["powershell.exe", "cmd.exe", "regedit.exe"];
const WINDOW_TITLES: [&str; 6] = [
    "Inbox - Outlook",
    "Q3 Forecast.xlsx - Excel",
    "Microsoft Teams",
    "SAP Easy Access",
    "Customer 360 - CRM",
    "Visual Studio Code",
];

/// A user of the generated organisation.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    /// `CORP\first.last`.
    pub account: String,
    pub department: &'static str,
    /// `CORP\<department>` and `CORP\Domain Users`.
    pub groups: Vec<String>,
    /// The user's own laptop.
    pub client_name: String,
    pub client_ip: String,
}

/// A Session Recording server of the generated fleet.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerSpec {
    pub name: String,
    pub host: String,
    pub version: String,
    pub cloud: bool,
}

/// One session event to send (or store): the API's shape without an id.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedEvent {
    pub event_type: SessionEventType,
    /// From the session's start.
    pub offset_ms: u64,
    /// The API's flat `data` object, values as text.
    pub data: BTreeMap<String, String>,
}

/// One recorded session, from logon to logoff.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionPlan {
    /// The session's id on its server.
    pub session_id: String,
    pub user: String,
    pub groups: Vec<String>,
    pub client_name: String,
    pub client_ip: String,
    pub host: String,
    pub delivery_group: String,
    pub applications: Vec<String>,
    pub duration_ms: u64,
    pub events: Vec<PlannedEvent>,
}

/// The organisation a seed describes: its users and servers, and the
/// sessions they produce.
#[derive(Clone, Debug)]
pub struct Population {
    seed: u64,
    users: Vec<User>,
}

/// splitmix64: spreads `(seed, index)` into independent rng seeds.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn rng_for(seed: u64, stream: u64, index: u64) -> SmallRng {
    SmallRng::seed_from_u64(mix(mix(seed ^ stream.rotate_left(32)) ^ index))
}

/// A time gap with mean `mean_ms` (exponential: activity comes in bursts).
fn gap(rng: &mut SmallRng, mean_ms: f64) -> u64 {
    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
    (-u.ln() * mean_ms).round() as u64
}

fn pick<T: Copy>(rng: &mut SmallRng, items: &[T]) -> T {
    *items.choose(rng).expect("a non-empty list")
}

impl Population {
    /// The organisation of `seed`: 240 users over six departments.
    pub fn new(seed: u64) -> Population {
        let mut rng = rng_for(seed, 1, 0);
        let mut users = Vec::with_capacity(FIRST_NAMES.len() * 10);
        let mut names: Vec<(usize, usize)> = (0..FIRST_NAMES.len())
            .flat_map(|f| (0..LAST_NAMES.len()).map(move |l| (f, l)))
            .collect();
        names.shuffle(&mut rng);
        for (i, (f, l)) in names.into_iter().take(240).enumerate() {
            // Contractors are few; the other departments share the rest.
            let department = if i % 12 == 0 {
                "Contractors"
            } else {
                DEPARTMENTS[i % (DEPARTMENTS.len() - 1)]
            };
            users.push(User {
                account: format!(r"{DOMAIN}\{}.{}", FIRST_NAMES[f], LAST_NAMES[l]),
                department,
                groups: vec![
                    format!(r"{DOMAIN}\{department}"),
                    format!(r"{DOMAIN}\Domain Users"),
                ],
                client_name: format!("LT-{:05}", rng.gen_range(10_000..99_999)),
                client_ip: format!(
                    "10.{}.{}.{}",
                    20 + i % 4,
                    rng.gen_range(0..255),
                    rng.gen_range(2..254)
                ),
            });
        }
        Population { seed, users }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// The `n` Session Recording servers of the fleet.
    pub fn servers(&self, n: usize) -> Vec<ServerSpec> {
        let mut rng = rng_for(self.seed, 2, 0);
        (0..n)
            .map(|i| ServerSpec {
                name: format!("SR-{:02}", i + 1),
                host: format!("srs{:02}.corp.example", i + 1),
                version: format!("7.{}.{}", rng.gen_range(40..43), rng.gen_range(0..9)),
                cloud: i % 4 == 3,
            })
            .collect()
    }

    /// Session number `index`: who, where, and what they did. At most
    /// `max_events` session events (at least logon and logoff).
    pub fn session(&self, index: u64, max_events: usize) -> SessionPlan {
        let mut rng = rng_for(self.seed, 3, index);
        let user = &self.users[rng.gen_range(0..self.users.len())];
        let groups: Vec<&DeliveryGroup> = DELIVERY_GROUPS
            .iter()
            .filter(|g| g.departments.contains(&user.department))
            .collect();
        let group = pick(&mut rng, &groups);
        let host = format!(
            "{}-{:02}",
            group.host_prefix,
            rng.gen_range(1..=group.hosts)
        );
        // Most sessions publish one or two applications; desktops all.
        let published = rng.gen_range(1..=group.applications.len().min(3));
        let mut applications: Vec<String> = group
            .applications
            .choose_multiple(&mut rng, published)
            .map(|a| a.to_string())
            .collect();
        applications.sort();
        // Durations: mostly 10..90 minutes, some short checks, some long days.
        let duration_ms = match rng.gen_range(0..10) {
            0 => rng.gen_range(60_000..600_000),
            1 => rng.gen_range(5_400_000..14_400_000),
            _ => rng.gen_range(600_000..5_400_000),
        };
        // One session in eight misbehaves: its risky choices are likelier.
        let risky = rng.gen_bool(0.125);
        let first = user.account.split('\\').nth(1).unwrap_or("user");
        let mut events = vec![PlannedEvent {
            event_type: SessionEventType::Logon,
            offset_ms: 0,
            data: fields(&[
                ("clientName", &user.client_name),
                ("clientIp", &user.client_ip),
            ]),
        }];
        let mut at = 0u64;
        for app in &applications {
            at += gap(&mut rng, 4_000.0) + 500;
            events.push(event(
                SessionEventType::AppStart,
                at,
                &[
                    ("app", app),
                    ("pid", &rng.gen_range(1000..30000).to_string()),
                ],
            ));
        }
        let budget = max_events.max(2) - 1; // the logoff
        loop {
            at += gap(&mut rng, 45_000.0) + 200;
            if at >= duration_ms || events.len() >= budget {
                break;
            }
            let roll = rng.gen_range(0..100u32);
            let e = match roll {
                0..=27 => {
                    // Anyone may stray onto a file-sharing site; risky users do often.
                    let p_risky = if risky { 0.15 } else { 0.005 };
                    let url = if rng.gen_bool(p_risky) {
                        pick(&mut rng, &RISKY_SITES)
                    } else {
                        pick(&mut rng, &BENIGN_SITES)
                    };
                    event(
                        SessionEventType::WebBrowsing,
                        at,
                        &[("url", url), ("browser", pick(&mut rng, &BROWSERS))],
                    )
                }
                28..=45 => event(
                    SessionEventType::TopMostWindow,
                    at,
                    &[
                        (
                            "app",
                            applications[rng.gen_range(0..applications.len())].as_str(),
                        ),
                        ("title", pick(&mut rng, &WINDOW_TITLES)),
                    ],
                ),
                46..=57 => {
                    let doc = pick(&mut rng, &DOCUMENTS);
                    let confidential = (risky && rng.gen_bool(0.2)) || rng.gen_bool(0.01);
                    let path = if confidential {
                        format!(r"{CONFIDENTIAL_SHARE}\{doc}")
                    } else {
                        format!(r"C:\Users\{first}\Documents\{doc}")
                    };
                    let (kind, new_path) = match rng.gen_range(0..6) {
                        0..=2 => (SessionEventType::FileCreate, None),
                        3 => (
                            SessionEventType::FileRename,
                            Some(format!(r"C:\Users\{first}\Documents\old-{doc}")),
                        ),
                        4 => (SessionEventType::FileDelete, None),
                        _ => (
                            SessionEventType::FileMove,
                            Some(format!(r"C:\Users\{first}\Desktop\{doc}")),
                        ),
                    };
                    let size = rng.gen_range(2_000..4_000_000u64).to_string();
                    let mut data = vec![("path", path.as_str()), ("sizeBytes", size.as_str())];
                    if let Some(new_path) = &new_path {
                        data.push(("newPath", new_path));
                    }
                    event(kind, at, &data)
                }
                58..=65 => event(
                    SessionEventType::Clipboard,
                    at,
                    &[
                        (
                            "app",
                            applications[rng.gen_range(0..applications.len())].as_str(),
                        ),
                        ("format", if rng.gen_bool(0.8) { "text" } else { "image" }),
                        ("sizeBytes", &rng.gen_range(10..200_000).to_string()),
                    ],
                ),
                66..=73 => event(
                    SessionEventType::PerformanceSample,
                    at,
                    &[
                        ("cpuPercent", &rng.gen_range(2..95).to_string()),
                        ("memoryMb", &rng.gen_range(900..7_000).to_string()),
                        ("latencyMs", &rng.gen_range(8..180).to_string()),
                    ],
                ),
                74..=79 => {
                    // Idle spells: mostly short, sometimes a long lunch.
                    let seconds: u64 = if rng.gen_bool(0.2) {
                        rng.gen_range(900..3_600)
                    } else {
                        rng.gen_range(60..900)
                    };
                    let e = event(
                        SessionEventType::Idle,
                        at,
                        &[("seconds", &seconds.to_string())],
                    );
                    at += seconds * 1000;
                    e
                }
                80..=84 => {
                    let admin = (risky && rng.gen_bool(0.4))
                        || (user.department == "Engineering" && rng.gen_bool(0.2));
                    let app = if admin {
                        pick(&mut rng, &ADMIN_TOOLS)
                    } else {
                        pick(&mut rng, &["notepad.exe", "calc.exe", "mspaint.exe"])
                    };
                    event(
                        SessionEventType::AppStart,
                        at,
                        &[
                            ("app", app),
                            ("pid", &rng.gen_range(1000..30000).to_string()),
                        ],
                    )
                }
                85..=88 => event(
                    SessionEventType::Print,
                    at,
                    &[
                        ("printer", pick(&mut rng, &PRINTERS)),
                        ("document", pick(&mut rng, &DOCUMENTS)),
                        ("pages", &rng.gen_range(1..40).to_string()),
                    ],
                ),
                89..=92 => event(
                    SessionEventType::FileTransfer,
                    at,
                    &[
                        (
                            "path",
                            &format!(r"C:\Users\{first}\Downloads\{}", pick(&mut rng, &DOCUMENTS)),
                        ),
                        (
                            "direction",
                            if rng.gen_bool(0.7) {
                                "HOST_TO_CLIENT"
                            } else {
                                "CLIENT_TO_HOST"
                            },
                        ),
                        ("sizeBytes", &rng.gen_range(2_000..20_000_000).to_string()),
                    ],
                ),
                93..=95 => event(
                    SessionEventType::Disconnect,
                    at,
                    &[("clientName", &user.client_name)],
                ),
                96..=97 if risky || rng.gen_bool(0.1) => event(
                    SessionEventType::UsbMassStorage,
                    at,
                    &[
                        ("device", pick(&mut rng, &USB_DEVICES)),
                        ("action", "MOUNT"),
                    ],
                ),
                _ => event(
                    SessionEventType::RegistryChange,
                    at,
                    &[
                        ("key", r"HKCU\Software\Microsoft\Office\16.0\Common\General"),
                        ("operation", "SET"),
                    ],
                ),
            };
            let reconnect = e.event_type == SessionEventType::Disconnect;
            events.push(e);
            if reconnect && events.len() < budget {
                at += gap(&mut rng, 120_000.0) + 1_000;
                events.push(event(
                    SessionEventType::Reconnect,
                    at,
                    &[("clientName", &user.client_name)],
                ));
            }
        }
        let end = at
            .min(duration_ms)
            .max(events.last().map_or(0, |e| e.offset_ms));
        events.push(event(SessionEventType::Logoff, end, &[]));
        SessionPlan {
            session_id: format!("{:016x}-{index}", mix(self.seed)),
            user: user.account.clone(),
            groups: user.groups.clone(),
            client_name: user.client_name.clone(),
            client_ip: user.client_ip.clone(),
            host,
            delivery_group: group.name.to_string(),
            applications,
            duration_ms: end.max(duration_ms),
            events,
        }
    }
}

fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn event(event_type: SessionEventType, offset_ms: u64, data: &[(&str, &str)]) -> PlannedEvent {
    PlannedEvent {
        event_type,
        offset_ms,
        data: fields(data),
    }
}

// ---- terminal sessions -------------------------------------------------------

/// The shell of a terminal session (an admin at a command line): its
/// content is an asciicast v2 file, its events the cast's lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shell {
    Cmd,
    PowerShell,
    /// An OpenSSH client session to a Linux server.
    Ssh,
}

impl Shell {
    /// The executable the session publishes.
    pub fn executable(self) -> &'static str {
        match self {
            Shell::Cmd => "cmd.exe",
            Shell::PowerShell => "powershell.exe",
            Shell::Ssh => "ssh.exe",
        }
    }
}

/// The Linux servers admins reach over ssh.
const SSH_TARGETS: [&str; 4] = ["lnx-app-01", "lnx-app-02", "lnx-db-01", "lnx-web-03"];

/// Whether session `index` of `seed` is a terminal session, and in which
/// shell: about one session in six.
pub fn terminal_shell(seed: u64, index: u64) -> Option<Shell> {
    let mut rng = rng_for(seed, 9, index);
    if !rng.gen_bool(1.0 / 6.0) {
        return None;
    }
    Some(pick(&mut rng, &[Shell::Cmd, Shell::PowerShell, Shell::Ssh]))
}

/// Makes `plan` a terminal session in `shell`: the shell is its one
/// published application, started right after logon.
pub fn make_terminal(plan: &mut SessionPlan, shell: Shell) {
    plan.applications = vec![shell.executable().to_string()];
    let at = plan.events.first().map_or(0, |e| e.offset_ms) + 1_500;
    plan.events.insert(
        1.min(plan.events.len()),
        event(
            SessionEventType::AppStart,
            at.min(plan.duration_ms),
            &[("app", shell.executable())],
        ),
    );
}

/// One event line of an asciicast: `[seconds, code, data]`.
#[derive(Clone, Debug, PartialEq)]
pub struct CastLine {
    /// From the session's start.
    pub at_ms: u64,
    /// `o` output, `i` input.
    pub code: &'static str,
    pub data: String,
}

impl CastLine {
    /// The line as the file holds it (no newline).
    pub fn to_json(&self) -> String {
        serde_json::json!([self.at_ms as f64 / 1_000.0, self.code, self.data]).to_string()
    }
}

/// The header line of a terminal session's asciicast v2 file.
pub fn cast_header(shell: Shell, user: &str, host: &str, started_secs: i64) -> String {
    let (title, shell_path) = match shell {
        Shell::Cmd => (format!("{user}@{host}: Command Prompt"), "cmd.exe"),
        Shell::PowerShell => (
            format!("{user}@{host}: Windows PowerShell"),
            "powershell.exe",
        ),
        Shell::Ssh => (format!("{user}@{host}: ssh"), "ssh.exe"),
    };
    serde_json::json!({
        "version": 2,
        "width": 120,
        "height": 30,
        "timestamp": started_secs,
        "title": title,
        "env": { "SHELL": shell_path, "TERM": "xterm-256color" },
    })
    .to_string()
}

/// A command and what it prints.
type Exchange = (&'static str, &'static [&'static str]);

const CMD_EXCHANGES: [Exchange; 6] = [
    ("whoami", &["corp\\{user}"]),
    ("hostname", &["{host}"]),
    (
        "ipconfig | findstr IPv4",
        &["   IPv4 Address. . . . . . . . . . . : 10.20.4.31"],
    ),
    (
        "net use",
        &[
            "New connections will be remembered.",
            "",
            "Status       Local     Remote",
            "-------------------------------------------------------",
            "OK           F:        \\\\fs01\\Finance",
            "The command completed successfully.",
        ],
    ),
    (
        "dir F:\\Reports",
        &[
            " Volume in drive F is Finance",
            " Directory of F:\\Reports",
            "",
            "03/02/2026  09:14    <DIR>          .",
            "03/02/2026  08:55           245,760 Q3 Forecast.xlsx",
            "               1 File(s)        245,760 bytes",
        ],
    ),
    (
        "tasklist | findstr /i sap",
        &["saplogon.exe                  6412 RDP-Tcp#3                  2    184,220 K"],
    ),
];

const POWERSHELL_EXCHANGES: [Exchange; 6] = [
    ("Get-Service Spooler", &["", "Status   Name               DisplayName", "------   ----               -----------", "Running  Spooler            Print Spooler"]),
    ("Get-Process | Sort-Object CPU -Descending | Select-Object -First 3 Name,CPU", &["", "Name          CPU", "----          ---", "msedge     412.53", "teams      198.02", "outlook     87.40"]),
    ("Test-NetConnection fs01 -Port 445 | Select-Object TcpTestSucceeded", &["", "TcpTestSucceeded", "----------------", "            True"]),
    ("Get-ChildItem C:\\Temp | Measure-Object | Select-Object Count", &["", "Count", "-----", "   14"]),
    ("Get-HotFix | Select-Object -Last 1 HotFixID,InstalledOn", &["", "HotFixID  InstalledOn", "--------  -----------", "KB5034441 2/14/2026 12:00:00 AM"]),
    ("Restart-Service Spooler -Verbose", &["VERBOSE: Performing the operation \"Restart-Service\" on target \"Print Spooler (Spooler)\"."]),
];

const SSH_EXCHANGES: [Exchange; 6] = [
    (
        "uptime",
        &[" 14:02:11 up 41 days,  3:17,  1 user,  load average: 0.42, 0.37, 0.31"],
    ),
    (
        "df -h /var",
        &[
            "Filesystem      Size  Used Avail Use% Mounted on",
            "/dev/sda3        98G   61G   33G  65% /var",
        ],
    ),
    (
        "systemctl status nginx --no-pager | head -3",
        &[
            "* nginx.service - A high performance web server and a reverse proxy server",
            "     Loaded: loaded (/lib/systemd/system/nginx.service; enabled)",
            "     Active: active (running) since Mon 2026-02-23 09:12:40 UTC",
        ],
    ),
    (
        "tail -n 2 /var/log/syslog",
        &[
            "Mar  2 14:01:58 {host} CRON[22817]: (root) CMD (run-parts /etc/cron.hourly)",
            "Mar  2 14:02:03 {host} systemd[1]: Started Session 412 of user admin.",
        ],
    ),
    ("sudo apt list --upgradable 2>/dev/null | wc -l", &["7"]),
    (
        "free -m",
        &[
            "               total        used        free      shared  buff/cache   available",
            "Mem:           15884        6120        1402         212        8361        9218",
        ],
    ),
];

/// The lines of a terminal session's asciicast: a prompt, then commands
/// typed (`i`), echoed and answered (`o`), spread over `duration_ms`; the
/// same for the same `(seed, index)`.
pub fn terminal_cast(
    seed: u64,
    index: u64,
    shell: Shell,
    user: &str,
    duration_ms: u64,
) -> Vec<CastLine> {
    let mut rng = rng_for(seed, 10, index);
    let first = user.split('\\').nth(1).unwrap_or(user);
    let remote = pick(&mut rng, &SSH_TARGETS);
    let (prompt, exchanges): (String, &[Exchange]) = match shell {
        Shell::Cmd => (format!("C:\\Users\\{first}>"), &CMD_EXCHANGES),
        Shell::PowerShell => (format!("PS C:\\Users\\{first}> "), &POWERSHELL_EXCHANGES),
        Shell::Ssh => (format!("admin@{remote}:~$ "), &SSH_EXCHANGES),
    };
    let fill = |text: &str| text.replace("{user}", first).replace("{host}", remote);
    let mut lines = Vec::new();
    let mut at = 400 + rng.gen_range(0..600);
    let banner = match shell {
        Shell::Cmd => "Microsoft Windows [Version 10.0.20348.2340]\r\n(c) Microsoft Corporation. All rights reserved.\r\n\r\n".to_string(),
        Shell::PowerShell => "Windows PowerShell\r\nCopyright (C) Microsoft Corporation. All rights reserved.\r\n\r\n".to_string(),
        Shell::Ssh => "Welcome to Ubuntu 22.04.4 LTS (GNU/Linux 5.15.0-97-generic x86_64)\r\nLast login: Mon Mar  2 09:12:40 2026 from 10.20.4.31\r\n".to_string(),
    };
    if shell == Shell::Ssh {
        lines.push(CastLine {
            at_ms: at,
            code: "o",
            data: format!("PS C:\\Users\\{first}> ssh admin@{remote}\r\n"),
        });
        at += 800;
    }
    lines.push(CastLine {
        at_ms: at,
        code: "o",
        data: format!("{banner}{prompt}"),
    });
    let commands = rng.gen_range(5..=10);
    // Spread the commands over the first four fifths of the session (each
    // answer takes under half a second).
    let step =
        (duration_ms.saturating_mul(8) / 10).saturating_sub(at + 450 * commands) / (commands + 1);
    for _ in 0..commands {
        let (command, output) = pick(&mut rng, exchanges);
        at += rng.gen_range(step / 2..=step.max(1));
        lines.push(CastLine {
            at_ms: at,
            code: "i",
            data: format!("{command}\r"),
        });
        lines.push(CastLine {
            at_ms: at + 5,
            code: "o",
            data: format!("{command}\r\n"),
        });
        let printed: Vec<String> = output.iter().map(|line| fill(line)).collect();
        at += 40 + rng.gen_range(0..400);
        lines.push(CastLine {
            at_ms: at,
            code: "o",
            data: format!("{}\r\n{prompt}", printed.join("\r\n")),
        });
    }
    let exit = if shell == Shell::Ssh {
        "logout\r\nConnection to host closed.\r\n"
    } else {
        ""
    };
    at += rng.gen_range(step / 4..=step.max(1));
    lines.push(CastLine {
        at_ms: at,
        code: "i",
        data: "exit\r".into(),
    });
    lines.push(CastLine {
        at_ms: at + 5,
        code: "o",
        data: format!("exit\r\n{exit}"),
    });
    lines
}

/// The id of a recording's `index`th session event: the same for the same
/// recording and index, so a repeated batch is recognised as such.
pub fn event_id(recording_id: Uuid, index: usize) -> Uuid {
    let digest = Sha256::new()
        .chain_update(recording_id.as_bytes())
        .chain_update((index as u64).to_be_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// `len` bytes of screen-recording-like content for a recording: the same
/// for the same recording, incompressible like real video.
pub fn content(recording_id: Uuid, len: usize) -> Vec<u8> {
    let mut rng =
        SmallRng::seed_from_u64(recording_id.as_u64_pair().0 ^ recording_id.as_u64_pair().1);
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes[..]);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use srs_domain::model::SessionEventData;

    #[test]
    fn terminal_casts_are_valid_asciicast_within_their_session() {
        let population = Population::new(3);
        let mut terminals = 0;
        for index in 0..300 {
            let Some(shell) = terminal_shell(3, index) else {
                continue;
            };
            terminals += 1;
            let mut plan = population.session(index, 60);
            make_terminal(&mut plan, shell);
            assert_eq!(plan.applications, vec![shell.executable().to_string()]);
            let lines = terminal_cast(3, index, shell, &plan.user, plan.duration_ms);
            assert_eq!(
                lines,
                terminal_cast(3, index, shell, &plan.user, plan.duration_ms)
            );
            assert!(lines.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
            assert!(
                lines.iter().all(|l| l.at_ms <= plan.duration_ms),
                "{shell:?}"
            );
            let header: serde_json::Value =
                serde_json::from_str(&cast_header(shell, &plan.user, &plan.host, 0)).unwrap();
            assert_eq!(header["version"], 2);
            for line in &lines {
                let (secs, code, data): (f64, String, String) =
                    serde_json::from_str(&line.to_json()).unwrap();
                assert!(secs >= 0.0 && !data.is_empty());
                assert!(code == "i" || code == "o");
            }
        }
        assert!(
            (25..=80).contains(&terminals),
            "{terminals} of 300 are terminal sessions"
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_sessions() {
        let a = Population::new(7);
        let b = Population::new(7);
        assert_eq!(a.users(), b.users());
        assert_eq!(a.servers(5), b.servers(5));
        for index in 0..50 {
            assert_eq!(a.session(index, 200), b.session(index, 200));
        }
        // Order of generation does not matter: a session is a function of its index.
        assert_eq!(a.session(42, 200), Population::new(7).session(42, 200));
    }

    #[test]
    fn different_seeds_give_different_sessions() {
        let a = Population::new(1);
        let b = Population::new(2);
        let differ = (0..20)
            .filter(|&i| a.session(i, 200) != b.session(i, 200))
            .count();
        assert!(differ >= 19, "only {differ} of 20 sessions differ");
        assert_ne!(a.users(), b.users());
    }

    #[test]
    fn sessions_are_well_formed_and_parse_as_the_api_does() {
        let population = Population::new(3);
        for index in 0..200 {
            let plan = population.session(index, 120);
            assert!(plan.events.len() >= 2 && plan.events.len() <= 120);
            assert_eq!(plan.events[0].event_type, SessionEventType::Logon);
            assert_eq!(
                plan.events.last().map(|e| e.event_type),
                Some(SessionEventType::Logoff)
            );
            assert!(plan
                .events
                .windows(2)
                .all(|w| w[0].offset_ms <= w[1].offset_ms));
            assert!(plan.duration_ms >= plan.events.last().map_or(0, |e| e.offset_ms));
            assert!(!plan.applications.is_empty());
            assert!(plan.user.starts_with(r"CORP\"));
            for e in &plan.events {
                SessionEventData::parse(e.event_type, &e.data)
                    .unwrap_or_else(|err| panic!("{:?} does not parse: {err}", e));
            }
        }
    }

    #[test]
    fn a_fleet_has_every_activity_and_some_risky_ones() {
        let population = Population::new(11);
        let mut seen = std::collections::BTreeSet::new();
        let mut risky_web = 0;
        let mut usb = 0;
        for index in 0..400 {
            for e in population.session(index, 400).events {
                seen.insert(e.event_type);
                if e.event_type == SessionEventType::WebBrowsing
                    && RISKY_SITE_HOSTS.iter().any(|h| e.data["url"].contains(h))
                {
                    risky_web += 1;
                }
                usb += usize::from(e.event_type == SessionEventType::UsbMassStorage);
            }
        }
        for t in [
            SessionEventType::AppStart,
            SessionEventType::WebBrowsing,
            SessionEventType::FileCreate,
            SessionEventType::UsbMassStorage,
            SessionEventType::Clipboard,
            SessionEventType::Idle,
            SessionEventType::Logoff,
        ] {
            assert!(seen.contains(&t), "no {t:?} in 400 sessions");
        }
        assert!(risky_web > 0 && usb > 0);
    }

    #[test]
    fn event_ids_are_stable_per_recording_and_index() {
        let r = Uuid::from_u128(5);
        assert_eq!(event_id(r, 3), event_id(r, 3));
        assert_ne!(event_id(r, 3), event_id(r, 4));
        assert_ne!(event_id(r, 3), event_id(Uuid::from_u128(6), 3));
        assert_eq!(content(r, 64), content(r, 64));
        assert_ne!(content(r, 64), content(Uuid::from_u128(6), 64));
    }
}
