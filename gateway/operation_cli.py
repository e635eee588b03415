"""`opengate operation …`: the month's statement reconciled with the audit log, and a
statement issued from the host (the same functions as the API)."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from gateway.audit_cli import _engine, _signer, record_cli_event
from kernel.problems import Problem
from operation import statements
from operation.products import yuan

operation_app = typer.Typer(
    help="Authorized operation: metering and statements.", no_args_is_help=True
)


@operation_app.command("reconcile")
def reconcile(
    month: str = typer.Option(..., "--month", help="YYYY-MM (business month, UTC+8)"),
    as_json: bool = typer.Option(False, "--json", help="Print the differences as JSON."),
) -> None:
    """Recompute every statement line of MONTH from the audit log and print the difference
    from the usage ledger and from the issued statement. Exit 1 when they differ."""
    _, engine = _engine()
    try:
        differences = statements.reconcile(engine, month)
        lines = statements.compute(engine, month)
    except Problem as exc:
        typer.echo(f"错误：{exc.detail}", err=True)
        raise typer.Exit(2) from None
    record_cli_event(
        engine, "audit.reconciliation", resource=f"statements/{month}",
        detail={"differences": len(differences)},
    )  # fmt: skip
    if as_json:
        typer.echo(json.dumps({"month": month, "differences": differences}, ensure_ascii=False))
    elif not differences:
        typer.echo(f"{month} 对账：{len(lines)} 行账单，台账、审计日志与已出具账单一致，差异 0 处")
    else:
        table = Table(title=f"{month} 对账：{len(lines)} 行账单，差异 {len(differences)} 处")
        for column in ("应用", "产品", "免费", "台账/账单 次数·行数", "审计日志 次数·行数"):
            table.add_column(column)
        for d in differences:
            mine = d.get("ledger") or d.get("issued") or {}
            table.add_row(
                d["client_id"], str(d["product_id"]), "是" if d["free"] else "否",
                f"{mine.get('calls', 0)}·{mine.get('rows', 0)}",
                f"{d['audit']['calls']}·{d['audit']['rows']}",
            )  # fmt: skip
        Console().print(table)
    raise typer.Exit(1 if differences else 0)


@operation_app.command("issue")
def issue(month: str = typer.Option(..., "--month", help="A closed month, YYYY-MM")) -> None:
    """Issue MONTH's statement: signed with the audit key, immutable from then on."""
    from sqlmodel import Session

    settings, engine = _engine()
    try:
        with Session(engine) as session:
            issued = statements.issue(
                session, engine, month, signer=_signer(settings, engine), by="cli"
            )
    except Problem as exc:
        typer.echo(f"错误：{exc.detail}", err=True)
        raise typer.Exit(2) from None
    record_cli_event(
        engine, "operation.statement_issue", resource=f"statements/{month}",
        detail={"total_fen": issued.total_fen},
    )  # fmt: skip
    typer.echo(f"已出具 {month} 账单：{len(issued.lines)} 行，合计 {yuan(issued.total_fen)} 元")
