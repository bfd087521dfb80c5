"""The `zhiku` command line: a thin front end over the same service functions as the HTTP API."""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from contextlib import closing, contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlmodel import Session

from api.runtime import Runtime
from kb import audit, service, users
from kb.db import make_engine, session_scope, upgrade
from kb.demo import DEMO_PASSWORD, DEMO_USERS
from kb.errors import ZhikuError
from kb.models import Role
from kb.settings import Settings, get_settings

app = typer.Typer(help="知库 Zhiku — knowledge base and retrieval assistant for bank contact centres.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
demo_app = typer.Typer(help="The demo knowledge base of 云岭银行.", no_args_is_help=True)
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
entries_app = typer.Typer(help="Knowledge entries.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
models_app = typer.Typer(help="The offline embedding model.", no_args_is_help=True)
pack_app = typer.Typer(help="Update-pack files.", no_args_is_help=True)
eval_app = typer.Typer(help="Measure retrieval quality on labelled questions.", no_args_is_help=True)
report_app = typer.Typer(help="Reports for managers.", no_args_is_help=True)
attachments_app = typer.Typer(help="Stored attachment files.", no_args_is_help=True)
app.add_typer(report_app, name="report")
for sub, name in ((db_app, "db"), (demo_app, "demo"), (users_app, "users"), (entries_app, "entries"),
                  (audit_app, "audit"), (models_app, "models"), (eval_app, "eval"), (pack_app, "pack"),
                  (attachments_app, "attachments")):
    app.add_typer(sub, name=name)

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _settings() -> Settings:
    return get_settings()


@contextmanager
def _runtime() -> Iterator[Runtime]:
    runtime = Runtime.open(_settings())
    try:
        yield runtime
    finally:
        runtime.close()


@contextmanager
def _session() -> Iterator[Session]:
    runtime = Runtime.open(_settings())
    try:
        with session_scope(runtime.engine) as session:
            yield session
    finally:
        runtime.close()


@contextmanager
def _phases() -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar on stderr with one line per phase ("index", "query", …): progress(phase, done, total)."""
    with Progress(transient=True, console=err) as bar:
        tasks: dict[str, object] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done)  # type: ignore[arg-type]

        yield progress


def _print_report(report: dict, *, title: str, as_json: bool) -> None:  # type: ignore[type-arg]
    """An evaluation report as a metric table (on stderr with --json, so the JSON stays the last stdout line)."""
    table = Table("metric", "value", title=title)
    for key, value in report.items():
        if key not in ("corpus", "queries", "dialogs"):  # the input paths are not metrics
            table.add_row(key, str(value))
    (err if as_json else out).print(table)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema to the newest version (idempotent)."""
    settings = _settings()
    engine = make_engine(settings.resolved_database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    out.print(f"数据库已是最新 database at head: {engine.url.render_as_string(hide_password=True)}")


@demo_app.command("corpus")
def demo_corpus(out_path: Annotated[Path, typer.Argument(dir_okay=False, help="JSONL file to write.")]) -> None:
    """Write the demo knowledge base as an evaluation corpus for `zhiku eval retrieval|conversations`."""
    from ingestion.demo import write_demo_corpus

    lines = write_demo_corpus(out_path)
    out.print(f"{lines} 条 entries → {out_path}")


@demo_app.command("load")
def demo_load() -> None:
    """Load the demo entries and demo accounts; a second run loads nothing twice."""
    from ingestion.demo import load_demo

    with _runtime() as runtime:
        with session_scope(runtime.engine) as session:
            report = load_demo(session=session)
        out.print(
            f"演示知识库 demo knowledge base: {report.entries_created} created, {report.entries_present} already present; "
            f"{report.users_created} demo accounts created"
        )
        _sync(runtime, rebuild=False)
    _print_demo_logins()


def _sync(runtime: Runtime, *, rebuild: bool) -> None:
    with Progress(transient=True, console=err) as bar:
        task = bar.add_task("索引 indexing", total=None)
        report = runtime.sync_index(rebuild=rebuild, progress=lambda n: bar.advance(task, n))
    if report.replaced_embedder:
        out.print(f"编码器已更换 embedder changed: the index held vectors of {report.replaced_embedder}; "
                  f"every version re-embedded with {runtime.embedder.name}")
    out.print(
        f"索引已同步 index in sync: {report.versions_indexed} versions embedded ({report.points_written} chunks), "
        + (f"names added to {report.versions_named} versions, " if report.versions_named else "") +
        f"{report.windows_updated} validity windows refreshed, {report.versions_removed} stale versions removed"
    )


def _print_demo_logins() -> None:
    logins = ", ".join(f"{name} ({role})" for name, (role, _dept, _display) in DEMO_USERS.items())
    out.print(f"演示账号 demo logins: {logins} — password: {DEMO_PASSWORD}")


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Option(help="Login name.")],
    password: Annotated[str, typer.Option(help="At least 8 characters.", prompt=True, hide_input=True)],
    role: Annotated[Role, typer.Option(help="agent / expert / reviewer / admin.")],
    department: Annotated[str | None, typer.Option(help="Department, e.g. 合规部.")] = None,
    display_name: Annotated[str, typer.Option(help="Name shown in pages.")] = "",
) -> None:
    """Create a user account."""
    with _session() as session:
        user = users.create_user(session=session, username=username, password=password, role=role.value,
                                 department=department, display_name=display_name, actor="cli")
    out.print(f"已创建用户 created user {user.username} ({user.role})")


@users_app.command("list")
def users_list() -> None:
    """List user accounts."""
    with _session() as session:
        rows = users.list_users(session=session)
    table = Table("username", "role", "department", "active")
    for u in rows:
        table.add_row(u.username, u.role, u.department or "", "yes" if u.active else "no")
    out.print(table)


@entries_app.command("list")
def entries_list(
    category: Annotated[str | None, typer.Option(help="product/process/compliance/faq or 产品体系/业务流程/合规要求/常见问题.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array of the current entries.")] = False,
) -> None:
    """List the entries in force now."""
    with _session() as session:
        rows, total = service.list_entries(session=session, category=category)
    if as_json:
        sys.stdout.write(json.dumps([r.model_dump(mode="json") for r in rows], ensure_ascii=False) + "\n")
        return
    table = Table("id", "分类", "版本", "标题", title=f"{total} entries")
    for r in rows:
        table.add_row(r.id, r.category_label, str(r.current.number if r.current else "-"), r.current.title if r.current else "")
    out.print(table)


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit chain; print OK or the first broken link (exit code 1)."""
    with _session() as session:
        report = audit.verify(session=session)
    if report.ok:
        out.print(f"OK — {report.checked} audit events verified")
        return
    err.print(f"BROKEN at event {report.first_broken}: {report.reason} ({report.checked} events verified before it)")
    raise typer.Exit(1)


@attachments_app.command("sweep")
def attachments_sweep(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be removed.")] = False,
    grace_hours: Annotated[float, typer.Option(min=0.0, help="Keep unreferenced files younger than this.")] = 1.0,
) -> None:
    """Remove stored files no attachment refers to any more (a replaced draft's uploads) and temp files
    left by a crash; files older than the grace period only. Recorded in the audit log."""
    from datetime import timedelta

    from kb import attachments

    settings = _settings()
    with _session() as session:
        report = attachments.sweep_orphans(session=session, root=settings.resolved_data_dir,
                                           grace=timedelta(hours=grace_hours), dry_run=dry_run)
        if not dry_run and report.files_removed:
            audit.append(session=session, actor="zhiku-cli", action="attachments.sweep", object_type="attachment",
                         object_id="*", detail={"files_removed": report.files_removed, "bytes_freed": report.bytes_freed})
    verb = "可删除 would remove" if dry_run else "已删除 removed"
    out.print(f"{verb} {report.files_removed} 个文件 files ({report.bytes_freed} bytes); "
              f"保留 kept {report.referenced} referenced, {report.kept_recent} younger than {grace_hours:g} h")


@models_app.command("prepare")
def models_prepare(
    force: Annotated[bool, typer.Option(help="Rebuild even if the folder is already prepared.")] = False,
) -> None:
    """Build the bundled multilingual-e5-small into <data_dir>/models once, and verify it (offline); export
    the model's ONNX encoders, fp32 and int8 (also for a model of your own named by ZHIKU_EMBED_MODEL)."""
    from ingestion.model_prepare import prepare_e5_model, verify_model
    from ingestion.onnx_export import export_onnx, quantize_int8
    from retrieval.embedding import model_fingerprint

    settings = _settings()
    if settings.embed_model:
        out.print(f"使用自带模型 using ZHIKU_EMBED_MODEL={settings.embed_model}; nothing to build")
        path = settings.model_path
    else:
        path = prepare_e5_model(settings.model_path, force=force)
        cosine = verify_model(path)
        out.print(f"模型就绪 model ready: {path} (verified, min cosine {cosine:.5f})")
    if settings.encoder != "torch":  # both, so ZHIKU_ENCODER can switch without another prepare
        out.print(f"ONNX 编码器 fp32 ONNX encoder: {export_onnx(path, force=force)} (verified against PyTorch)")
        out.print(f"ONNX 编码器 int8 ONNX encoder: {quantize_int8(path, force=force)} (verified against fp32)")
    # hashed now rather than at the first start; the index records it with the folder's name
    out.print(f"模型指纹 model fingerprint: {path.name}@{model_fingerprint(path)}")


@app.command()
def reindex(
    check: Annotated[bool, typer.Option("--check", help="Only report drift between the database and the index.")] = False,
    missing: Annotated[bool, typer.Option("--missing", help="Embed only what the index lacks (versions, or their names) "
                                          "and refresh validity windows; keep the rest.")] = False,
) -> None:
    """Rebuild the vector index from the database (or, with --check, report drift; exit 1 if any)."""
    with _runtime() as runtime:
        if check:
            with Session(runtime.engine) as session:
                drift = runtime.indexer.check(session=session)
            if drift.ok:
                out.print(f"OK — index matches the database (vectors of {runtime.embedder.name})")
                return
            err.print(f"DRIFT: {len(drift.missing)} versions missing, {len(drift.extra)} extra, {len(drift.partial)} partial "
                      "(in the chunk index or the names index; `zhiku reindex` rebuilds both)")
            if drift.other_embedder:
                err.print(f"  embedder: the index holds vectors of {drift.other_embedder}, not {runtime.embedder.name}")
            for label, ids in (("missing", drift.missing), ("extra", drift.extra), ("partial", drift.partial)):
                for vid in ids[:20]:
                    err.print(f"  {label}: {vid}")
            raise typer.Exit(1)
        _sync(runtime, rebuild=not missing)


@pack_app.command("template")
def pack_template(path: Annotated[Path, typer.Argument(help="Where to write the XLSX template.")] = Path("知库更新包模板.xlsx")) -> None:
    """Write the XLSX update-pack template (Chinese headers, instructions sheet, one example row)."""
    from ingestion.parsers import write_template

    out.print(f"已写入模板 template written: {write_template(path)}")


@app.command()
def ingest(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A .md, .xlsx, .csv, .docx, .pdf or .zip file.")],
    submit: Annotated[bool, typer.Option("--submit", help="Submit the draft for review at once.")] = False,
    as_user: Annotated[str, typer.Option("--as", help="The expert the pack belongs to.")] = "expert",
    title: Annotated[str | None, typer.Option(help="Pack title (default: the file name).")] = None,
    replace: Annotated[str | None, typer.Option("--replace", help="Replace the items of this draft pack (yours) instead.")] = None,
) -> None:
    """Preview an update-pack file and save it as a draft, or over a draft (exit 1, nothing saved, on any error)."""
    from kb.models import Actor
    from review_workflow import service as workflow
    from review_workflow.upload import pack_from_upload, preview_upload

    data = path.read_bytes()
    with _session() as session:
        user = users.get_user(session=session, username=as_user)
        with Progress(transient=True, console=err) as bar:
            bar.add_task(f"解析 parsing {path.name}", total=None)
            preview, _ = preview_upload(session=session, filename=path.name, data=data)
        _print_preview(preview)
        if not preview.ok:
            raise typer.Exit(1)
        pack, _ = pack_from_upload(session=session, filename=path.name, data=data, title=title,
                                   actor=Actor(user.username, user.role), replace_pack_id=replace,
                                   data_dir=_settings().resolved_data_dir)
        if submit:
            workflow.submit_pack(session=session, pack_id=pack.id, actor=Actor(user.username, user.role),
                                 sla_hours=_settings().sla_hours)
    out.print(f"更新包 pack {pack.id}: {pack.state}, {len(preview.items)} items")


def _print_preview(preview) -> None:  # type: ignore[no-untyped-def]
    table = Table("#", "操作", "条目", "标题", "变更 changes", "合规 lint", "来源 source", title=f"预览 preview: {preview.file}")
    for item in preview.items:
        changes = "无变化 unchanged" if item.unchanged else "；".join(
            f"{c['key']}: {c['before'] or ''} → {c['after'] or ''}" for c in item.changes)[:120]
        lint_text = "、".join(f"{f['flag']}({f['severity']})" for f in item.findings)
        table.add_row(str(item.position + 1), item.op, item.entry_id or "新", item.title, changes, lint_text, item.source)
    out.print(table)
    for e in preview.errors:
        err.print(f"错误 error: {e.get('message')}")


@app.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="Apply what is pending, then exit.")] = False,
) -> None:
    """Run the outbox worker on its own (scaled-out setups; the embedded server runs one in-process)."""
    import signal
    import threading

    with _runtime() as runtime:
        runtime.indexer.require_own_vectors()
        if once:
            out.print(f"已应用 applied {runtime.drain_outbox()} outbox events")
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        runtime.worker.start()
        out.print("outbox worker running; Ctrl-C to stop")
        try:
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="Keywords or a question, e.g. 房贷利率.")],
    top_k: Annotated[int, typer.Option(help="How many entries.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the response as JSON.")] = False,
) -> None:
    """Search the knowledge base the way agents do."""
    import dataclasses

    with _runtime() as runtime:
        response = runtime.searcher.search(query, top_k=top_k)
    if as_json:
        sys.stdout.write(json.dumps(dataclasses.asdict(response), ensure_ascii=False, default=str) + "\n")
        return
    table = Table("#", "id", "v", "score", "标题", "相关 related",
                  title=f"{query} — confidence {response.confidence:.2f}{' → 转人工 handoff' if response.handoff else ''}, {response.took_ms} ms")
    for rank, hit in enumerate(response.hits, start=1):
        table.add_row(str(rank), hit.entry_id, str(hit.version), f"{hit.score:.4f}", hit.title,
                      "、".join(r.title for r in hit.related))
    out.print(table)


@eval_app.command("retrieval")
def eval_retrieval(
    corpus: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="JSONL: {id, title, text, category?, supersedes?}.")],
    queries: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="JSONL: {id, query, relevant_ids}.")],
    as_json: Annotated[bool, typer.Option("--json", help="Last stdout line: one JSON object with the report.")] = False,
    record: Annotated[bool | None, typer.Option("--record/--no-record", help="Store the scores (EvalRun) in the configured database; default: when it is initialised.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset name the run is stored under (default: the corpus folder or file name).")] = None,
) -> None:
    """Load CORPUS into a throwaway store and score QUERIES through the agents' search path."""
    from api.evaluation import evaluate_retrieval

    with _phases() as progress:
        report, results = evaluate_retrieval(corpus=corpus, queries=queries, settings=_settings(), progress=progress)
    _print_report(report, title=f"{corpus.parent.name or corpus.name}: {report['n']} queries", as_json=as_json)
    _record_eval(report, record=record, dataset=dataset or corpus.parent.name or corpus.stem,
                 corpus=str(corpus), queries=str(queries))
    if as_json:
        report["results"] = [{"id": r.id, "ranked": r.ranked[:10], "relevant_ids": r.relevant} for r in results]
        sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")


def _initialised_engine(settings: Settings):  # type: ignore[no-untyped-def]
    """The configured database's engine if it exists and is migrated, else None (never creates a file)."""
    from kb.db import current_revision

    url = settings.resolved_database_url
    if url.startswith("sqlite") and not Path(url.split("///", 1)[-1]).exists():
        return None
    engine = make_engine(url)
    try:
        if current_revision(engine) is not None:
            return engine
    except Exception:  # noqa: BLE001 - an unreachable database just means "do not record"
        pass
    engine.dispose()
    return None


def _record_eval(report: dict, *, record: bool | None, dataset: str, corpus: str, queries: str) -> None:  # type: ignore[type-arg]
    """Store an evaluation run (stderr says where); --record on an uninitialised database is an error."""
    import getpass

    from retrieval.analytics.quality import record_eval_run

    if record is False:
        return
    settings = _settings()
    engine = _initialised_engine(settings)
    if engine is None:
        if record:
            err.print("错误 error: --record needs an initialised database: run `zhiku db upgrade` first")
            raise typer.Exit(1)
        return
    try:
        with session_scope(engine) as session:
            run = record_eval_run(session=session, dataset=dataset, report=report, corpus=corpus, queries=queries,
                                  model=settings.model_path.name, actor=getpass.getuser())
            run_id = run.id
    finally:
        engine.dispose()
    err.print(f"已记录评测 recorded eval run {run_id} (dataset {dataset})")


@eval_app.command("golden")
def eval_golden(
    category: Annotated[str | None, typer.Option(help="Only this category (product/process/compliance/faq or 中文名).")] = None,
    record: Annotated[bool, typer.Option("--record/--no-record", help="Store the run (dataset `golden`).")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Last stdout line: one JSON object with the run.")] = False,
) -> None:
    """Ask the golden questions experts maintain through the live search path; score and store the run."""
    import getpass

    from retrieval.analytics.quality import run_golden

    with _runtime() as runtime:
        with session_scope(runtime.engine) as session:
            run = run_golden(session=session, searcher=runtime.searcher, actor=getpass.getuser(), category=category,
                             model=runtime.embedder.name, record=record)
    table = Table("metric", "value", title=f"{run.dataset}: {run.n} questions")
    for key, value in run.metrics.items():
        if not isinstance(value, (dict, list)):
            table.add_row(key, str(value))
    for name, scores in (run.metrics.get("categories") or {}).items():
        table.add_row(f"{name} hit@1 / mrr@10", f"{scores.get('hit@1')} / {scores.get('mrr@10')}")
    (err if as_json else out).print(table)
    if as_json:
        sys.stdout.write(json.dumps(run.model_dump(mode="json"), ensure_ascii=False) + "\n")


@report_app.command("weekly")
def report_weekly(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the report and its PNG charts.")] = Path("reports"),
    fmt: Annotated[str, typer.Option("--format", help="md or html.")] = "md",
    weeks: Annotated[int, typer.Option(help="Weeks of history in the tables and charts.")] = 8,
    threshold: Annotated[float | None, typer.Option(help="Cosine distance grouping questions into one gap (model-specific).")] = None,
) -> None:
    """Write the weekly report for managers (gaps, frequent questions, 👎, unused entries, freshness, quality)."""
    from retrieval.analytics.report import weekly_report

    with _runtime() as runtime:
        with Session(runtime.engine) as session:
            files = weekly_report(session=session, embedder=runtime.embedder, out_dir=out_dir, fmt=fmt, weeks=weeks,
                                  threshold=threshold)
    out.print(f"已写入周报 report written: {files.report} (+{len(files.images)} charts)")


@eval_app.command("conversations")
def eval_conversations(
    corpus: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="JSONL corpus, as for `eval retrieval`.")],
    dialogs: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="JSONL: {id, turns: [{speaker: C|A, text}], expected: [{after_turn, relevant_ids}]}.")],
    as_json: Annotated[bool, typer.Option("--json", help="Last stdout line: one JSON object with the report.")] = False,
    show_misses: Annotated[bool, typer.Option("--misses", help="Also list missed checkpoints and flickering turns.")] = False,
) -> None:
    """Play DIALOGS through the live-card topic tracker over CORPUS: recall@3, hit@3, stable_ratio, p95_ms."""
    from api.evaluation import evaluate_conversations
    from retrieval.dialogs import misses

    with _phases() as progress:
        report, results = evaluate_conversations(corpus=corpus, dialogs=dialogs, settings=_settings(), progress=progress)
    _print_report(report, title=f"{dialogs.name}: {report['n_dialogs']} dialogues", as_json=as_json)
    wrong = misses(results)
    if show_misses:
        for miss in wrong:
            (out if not as_json else err).print(miss)
    if as_json:
        report["misses"] = wrong
        sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")


@eval_app.command("lint")
def eval_lint(
    cases: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="JSONL: {id, category, product_type, risk_level, text, expected_flags}.")],
    as_json: Annotated[bool, typer.Option("--json", help="Last stdout line: one JSON object with the report.")] = False,
) -> None:
    """Score the compliance lint on labelled cases: per-flag precision/recall, macro-F1, clean false positives."""
    from review_workflow.lint_eval import evaluate_lint, read_cases

    report = evaluate_lint(read_cases(cases))
    table = Table("flag", "tp", "fp", "fn", "precision", "recall", title=f"{cases.name}: macro-F1 {report['macro_f1']}, "
                  f"clean false positives {report['clean_false_positives']}")
    for flag, row in report.items():
        if isinstance(row, dict):
            table.add_row(flag, *(str(row[k]) for k in ("tp", "fp", "fn", "precision", "recall")))
    (err if as_json else out).print(table)
    if as_json:
        sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (ZHIKU_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (ZHIKU_PORT).")] = None,
    workers: Annotated[int, typer.Option(help="API worker processes; >1 needs ZHIKU_QDRANT_URL and a separate `zhiku worker`.")] = 1,
) -> None:
    """Run the web server (API, pages) on the configured database and index."""
    import os

    import uvicorn

    from api.app import create_app
    from api.logging import configure_logging

    settings = _settings()
    host, port = host or settings.host, port or settings.port
    if workers > 1 and not settings.qdrant_url:
        err.print("错误 error: --workers > 1 needs a Qdrant server (ZHIKU_QDRANT_URL): the embedded index "
                  "belongs to one process. Use PostgreSQL + Qdrant server for scale-out (docs/deployment.md).")
        raise typer.Exit(2)
    with closing(Runtime.open(settings)) as runtime:  # fail fast with a clear message before binding the port
        runtime.indexer.require_own_vectors()
    base = f"http://{host}:{port}"
    out.print(f"知库 Zhiku serving on {base}  (web pages {base}/login, health {base}/healthz, API docs {base}/docs)")
    _print_demo_logins_if_present(settings)
    if workers > 1:
        os.environ["ZHIKU_RUN_WORKER"] = "false"
        out.print(f"{workers} API workers; run `zhiku worker` once, separately, to index published changes")
        # Each worker process builds the app (and its JSON logging) through the factory.
        uvicorn.run("api.app:serve_app", factory=True, host=host, port=port, workers=workers,
                    log_level=settings.log_level.lower(), log_config=None, access_log=False)
        return
    configure_logging(settings.log_level, json_format=settings.log_format == "json")
    uvicorn.run(create_app(settings), host=host, port=port, log_level=settings.log_level.lower(),
                log_config=None, access_log=False)


def _print_demo_logins_if_present(settings: Settings) -> None:
    runtime = Runtime.open(settings)
    try:
        with Session(runtime.engine) as session:
            if all(_user_exists(session, name) for name in DEMO_USERS):
                _print_demo_logins()
    finally:
        runtime.close()


def _user_exists(session: Session, username: str) -> bool:
    try:
        users.get_user(session=session, username=username)
        return True
    except ZhikuError:
        return False


def main() -> None:
    """Console entry point: domain errors become one clear line and exit code 1."""
    try:
        app()
    except ZhikuError as exc:
        err.print(f"错误 error: {exc.message}")
        sys.exit(1)
