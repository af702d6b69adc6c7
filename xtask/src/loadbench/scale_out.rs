//! `loadbench --scale-out`: the same operations on one, then two server
//! processes sharing one PostgreSQL database (two client pools, half the
//! connections to each process), next to one and two bare baseline processes
//! measured the same way. The bare scaling factor is what the machine itself
//! allows: on 2 cores the load generator and the servers share the CPU, so a
//! second process cannot double anything.

use std::net::SocketAddr;

use serde_json::json;

use super::*;

/// One operation at one connection count, per run.
struct ScaleRow {
    name: &'static str,
    connections: usize,
    runs: Vec<ScaleRun>,
}

struct ScaleRun {
    one: Measured,
    two: Measured,
    /// None for the hashing path (a fixed body is no baseline for argon2).
    bare: Option<(Measured, Measured)>,
    /// Cores used during the two-process measurement: (both servers, PostgreSQL,
    /// load generator).
    cores_two: (f64, f64, f64),
}

/// CPU seconds used so far by the two servers, PostgreSQL and this process.
struct Cpu(f64, f64, f64);

impl Cpu {
    fn now(a: u32, b: u32) -> Cpu {
        Cpu(
            cpu_seconds(a) + cpu_seconds(b),
            postgres_cpu_seconds(),
            cpu_seconds(std::process::id()),
        )
    }

    /// Cores used on average since `before`.
    fn cores_since(&self, before: &Cpu, seconds: f64) -> (f64, f64, f64) {
        (
            (self.0 - before.0) / seconds,
            (self.1 - before.1) / seconds,
            (self.2 - before.2) / seconds,
        )
    }
}

pub fn scale_out(o: &Options) -> Result<(), String> {
    PgDb::check_reachable(&o.postgres)?;
    let bin = build_server()?;
    let dir = TempDir::new("loadbench-scale")?;
    let db = PgDb::create(&o.postgres, &format!("loadbench_{}", std::process::id()))?;
    let config = dir.0.join("config.toml");
    write_config(&config, &db.url())?;
    // Dropped before `db` (reverse order), so that the database can be dropped.
    let mut procs = Procs::new(&dir.0);
    // One at a time: A applies the migrations before B connects.
    let (pid_a, a) = procs.spawn(server_cmd(&bin, &config), "server A")?;
    let (pid_b, b) = procs.spawn(server_cmd(&bin, &config), "server B")?;
    let (_, bare_a) = procs.spawn(bare_cmd()?, "bare server A")?;
    let (_, bare_b) = procs.spawn(bare_cmd()?, "bare server B")?;
    eprintln!(
        "loadbench --scale-out: database {}, {} run(s) × {} s per measurement, connections {:?}",
        db.name, o.runs, o.seconds, o.connections
    );

    let rt = runtime()?;
    rt.block_on(async {
        let creds = prepare(a, "bench").await?;
        verify_shared(a, b, &creds).await?;

        let mut ops = read_ops(&creds, false);
        ops.push(write_op(&creds));
        let login = login_op("bench");
        let mut rows: Vec<ScaleRow> = Vec::new();
        for &c in &o.connections {
            for (name, _) in &ops {
                rows.push(ScaleRow { name, connections: c, runs: Vec::new() });
            }
        }
        rows.push(ScaleRow { name: login.0, connections: HASH_CONNECTIONS, runs: Vec::new() });

        for run in 0..o.runs {
            eprintln!("  run {}/{}", run + 1, o.runs);
            let mut i = 0;
            for &c in &o.connections {
                for (_, scenario) in &ops {
                    let one = run_load(&[a], scenario.clone(), c, o.duration(), "o").await;
                    let cpu = Cpu::now(pid_a, pid_b);
                    let two = run_load(&[a, b], scenario.clone(), c, o.duration(), "t").await;
                    let cores_two = Cpu::now(pid_a, pid_b).cores_since(&cpu, two.seconds);
                    let bare_one = run_load(&[bare_a], scenario.clone(), c, o.duration(), "b").await;
                    let bare_two =
                        run_load(&[bare_a, bare_b], scenario.clone(), c, o.duration(), "b").await;
                    rows[i].runs.push(ScaleRun { one, two, bare: Some((bare_one, bare_two)), cores_two });
                    i += 1;
                }
            }
            let one = run_load(&[a], login.1.clone(), HASH_CONNECTIONS, o.duration(), "l").await;
            let cpu = Cpu::now(pid_a, pid_b);
            let two = run_load(&[a, b], login.1.clone(), HASH_CONNECTIONS, o.duration(), "l").await;
            let cores_two = Cpu::now(pid_a, pid_b).cores_since(&cpu, two.seconds);
            rows[i].runs.push(ScaleRun { one, two, bare: None, cores_two });
        }

        println!(
            "\nPostgreSQL, medians over {} run(s) of {} s each. Scaling: two-process rate ÷ one-process rate \
             (median of per-run factors); the same for two bare processes ÷ one. Cores: CPU used during the \
             two-process measurement by both servers + PostgreSQL + the load generator, of {} cores.\n",
            o.runs,
            o.seconds,
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
        );
        println!("| operation | connections | 1 process req/s | 2 processes req/s | scaling | p99 1 / 2 processes | bare 1 / 2 processes req/s | bare scaling | cores: servers + PostgreSQL + load generator |");
        println!("|---|---|---|---|---|---|---|---|---|");
        for r in &rows {
            let scaling = median(r.runs.iter().map(|x| ratio(x.two.rate(), x.one.rate())));
            let (bare, bare_scaling) = if r.runs.iter().all(|x| x.bare.is_some()) {
                let bares = r.runs.iter().filter_map(|x| x.bare.as_ref());
                let (b1, b2): (Vec<f64>, Vec<f64>) =
                    bares.clone().map(|(x, y)| (x.rate(), y.rate())).unzip();
                (
                    format!("{:.0} / {:.0}", median(b1), median(b2)),
                    format!("{:.2}×", median(bares.map(|(x, y)| ratio(y.rate(), x.rate())))),
                )
            } else {
                ("—".to_string(), "—".to_string())
            };
            let errors: usize = r.runs.iter().map(|x| x.one.errors + x.two.errors).sum();
            println!(
                "| {} | {} | {} | {} | {:.2}× | {:.2} / {:.2} ms | {bare} | {bare_scaling} | {:.2} + {:.2} + {:.2} |{}",
                r.name,
                r.connections,
                fmt_rate(median(r.runs.iter().map(|x| x.one.rate()))),
                fmt_rate(median(r.runs.iter().map(|x| x.two.rate()))),
                scaling,
                median(r.runs.iter().map(|x| x.one.p99_ms)),
                median(r.runs.iter().map(|x| x.two.p99_ms)),
                median(r.runs.iter().map(|x| x.cores_two.0)),
                median(r.runs.iter().map(|x| x.cores_two.1)),
                median(r.runs.iter().map(|x| x.cores_two.2)),
                errors_note(errors)
            );
        }
        println!(
            "\nOn a 2-core machine the load generator and both servers share the two cores, \
             so the scaling factor is bounded by what the bare pair reaches; more processes \
             only pay off with cores (or machines) for them to run on."
        );
        Ok::<(), String>(())
    })?;
    drop(procs);
    drop(db);
    Ok(())
}

/// Tokens made through one process work on the other (the per-process token
/// cache is only a cache): A's access and OpenID tokens on B, and a login
/// through B on A.
async fn verify_shared(a: SocketAddr, b: SocketAddr, c: &Credentials) -> Result<(), String> {
    let who = once_ok(
        b,
        request(
            "GET",
            "/_matrix/client/v3/account/whoami",
            Some(&c.token),
            None,
        ),
    )
    .await
    .map_err(|e| format!("A's access token on B: {e}"))?;
    if who["user_id"] != json!(c.user) {
        return Err(format!("A's access token on B is someone else: {who}"));
    }
    once_ok(
        b,
        request(
            "GET",
            &format!(
                "/_matrix/federation/v1/openid/userinfo?access_token={}",
                c.openid
            ),
            None,
            None,
        ),
    )
    .await
    .map_err(|e| format!("A's OpenID token on B: {e}"))?;
    let login = once_ok(b, login_request("bench")).await?;
    let token = login["access_token"]
        .as_str()
        .ok_or("login on B gave no token")?;
    once_ok(
        a,
        request(
            "GET",
            "/_matrix/client/v3/account/whoami",
            Some(token),
            None,
        ),
    )
    .await
    .map_err(|e| format!("B's access token on A: {e}"))?;
    eprintln!("  verified: A's access and OpenID tokens work on B, B's access token on A");
    Ok(())
}
