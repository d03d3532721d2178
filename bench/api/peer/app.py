"""The benchmark peer of issue #3: the two benchmarked Orbas endpoints written the way a team would
otherwise write them in Python — FastAPI + asyncpg, served by uvicorn.

Same semantics as Orbas for these endpoints, so the comparison measures the stack, not the work:

* Auth: `Authorization: Bearer <jwt>`, HS256 only, verified with `ORBAS_JWT_SECRET` (the key Orbas signs
  with), 30 s leeway on `exp`/`iat`, every claim required and typed. Then, like Orbas' `Authenticated`
  extractor, one transaction on a pooled connection: `app.tenant_id` set transaction-locally, the session
  checked live (`sid`), the caller's team loaded (recursive reports). A second transaction runs the handler.
* RBAC: Orbas' default matrix for these two (resource, action) pairs.
* SQL: the same statements and row-level security (the login is an unprivileged member of `orbas_app`).
* Responses: the same JSON shapes (decimals as strings, RFC 3339 timestamps as chrono prints them), the
  same problem+json errors, `ETag`/`Location` on create, an audit row in the create's transaction, and an
  `x-request-id` taken from the request or generated, echoed back and recorded in the audit row.

Environment: ORBAS_PEER_DATABASE_URL (the app login's URL), ORBAS_JWT_SECRET (32+ bytes),
ORBAS_PEER_POOL_SIZE (connections per worker process, default 16).
Run: uvicorn app:app --app-dir bench/api/peer --workers 2 --no-access-log (see README.md).
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import os
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated, Literal

import asyncpg
import jwt
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

ROLES = frozenset({"admin", "manager", "sales_rep", "analyst", "support_agent", "read_only"})
LEEWAY_SECS = 30
MIN_KEY_BYTES = 32
MAX_TOKEN_LEN = 8192
PAGE_MAX = 500
PAGE_DEFAULT = 50

SET_TENANT = "SELECT set_config('app.tenant_id', $1, true)"
SESSION_LIVE = "SELECT revoked_at IS NULL AND expires_at > now() FROM sessions WHERE id = $1"
TEAM = (
    "WITH RECURSIVE team AS (SELECT id FROM users WHERE manager_id = $1 "
    "UNION SELECT u.id FROM users u JOIN team t ON u.manager_id = t.id) SELECT id FROM team ORDER BY id"
)
OPPORTUNITY_COLUMNS = (
    "id, tenant_id, account_id, primary_contact_id, owner_id, stage_id, name, kind, amount, currency, "
    "probability, forecast_category, status, close_date, closed_at, lost_reason, next_step, created_at, updated_at"
)
# Explicit columns rather than RETURNING *: the record is exactly the one Orbas returns (no `outcome`).
TASK_COLUMNS = (
    "id, tenant_id, kind, subject, description, status, priority, owner_id, account_id, contact_id, lead_id, "
    "opportunity_id, ticket_id, due_at, sla_due_at, completed_at, created_at, updated_at"
)
INSERT_TASK = (
    "INSERT INTO tasks (tenant_id, id, kind, subject, description, priority, owner_id, account_id, contact_id, "
    "lead_id, opportunity_id, ticket_id, due_at, sla_due_at) "
    "VALUES ($1, $2, $3, $4, $5, coalesce($6, 'normal'), $7, $8, $9, $10, $11, $12, $13, $14) "
    f"RETURNING {TASK_COLUMNS}"
)
INSERT_AUDIT = (
    "INSERT INTO audit_logs (tenant_id, id, actor_user_id, actor_api_key_id, action, resource, resource_id, "
    "changes, request_id, ip) VALUES ($1, $2, $3, NULL, 'create', 'tasks', $4, $5::jsonb, $6, $7::inet)"
)

# Orbas' permission matrix for the two benchmarked (resource, action) pairs: role -> scope.
OPPORTUNITIES_READ = {"admin": "all", "manager": "all", "analyst": "all", "read_only": "all", "sales_rep": "all"}
TASKS_CREATE = {"admin": "all", "manager": "team", "sales_rep": "own", "support_agent": "own"}


# --- ids, JSON --------------------------------------------------------------------------------------


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (version 7, RFC 9562) like Orbas' ids: 48-bit Unix ms, then 74 random bits."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 68) << 64 | 0b10 << 62 | (rand & (2**62 - 1))
    return uuid.UUID(int=value)


def rfc3339(t: dt.datetime) -> str:
    """As chrono serialises a `DateTime<Utc>`: `Z`, and 0, 3 or 6 fraction digits as needed."""
    us = t.microsecond
    spec = "seconds" if us == 0 else "milliseconds" if us % 1000 == 0 else "microseconds"
    return t.astimezone(dt.timezone.utc).isoformat(timespec=spec).replace("+00:00", "Z")


def _encode(v: object) -> object:
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, decimal.Decimal):
        return str(v)  # the scale the column has ("1200.00"), like rust_decimal
    if isinstance(v, dt.datetime):
        return rfc3339(v)
    if isinstance(v, dt.date):
        return v.isoformat()
    raise TypeError(f"cannot encode {type(v).__name__}")


def dumps(v: object) -> bytes:
    return json.dumps(v, default=_encode, separators=(",", ":"), ensure_ascii=False).encode()


def etag(body: bytes) -> str:
    """Strong validator, as Orbas: the first 12 bytes of the body's SHA-256, hex, quoted."""
    return f'"{hashlib.sha256(body).hexdigest()[:24]}"'


# --- problems -----------------------------------------------------------------------------------------


class Problem(Exception):
    """An RFC 9457 problem; raised anywhere, rendered by the handler below."""

    def __init__(self, status: int, detail: str, errors: list[dict] | None = None, challenge: bool = False):
        super().__init__(detail)
        self.status, self.detail, self.errors, self.challenge = status, detail, errors or [], challenge


def unauthorized(detail: str) -> Problem:
    return Problem(401, detail, challenge=True)


def problem_response(p: Problem) -> Response:
    title = HTTPStatus(p.status).phrase
    body: dict = {
        "type": f"https://orbas.dev/problems/{title.lower().replace(' ', '-')}",
        "title": title,
        "status": p.status,
        "detail": p.detail,
    }
    if p.errors:
        body["errors"] = p.errors
    headers = {"WWW-Authenticate": "Bearer"} if p.challenge else None
    if p.status == 503:
        headers = {"Retry-After": "1"}
    return Response(dumps(body), p.status, headers, media_type="application/problem+json")


# SQLSTATEs mapped as Orbas' data layer maps them (oltp/src/error.rs).
INVALID_STATES = {"23514", "23502", "22P02", "22001", "22003", "22007", "22008", "22023"}
TRANSIENT_STATES = {"40001", "40P01", "57P01", "57P02", "57P03"}


def problem_from_postgres(e: asyncpg.PostgresError) -> Problem:
    state = e.sqlstate or ""
    constraint = getattr(e, "constraint_name", None) or ""
    if state == "23505":
        return Problem(409, f"conflict on {constraint}")
    if state == "23503":
        if str(e).startswith("update or delete"):
            return Problem(409, f"conflict on {constraint}")
        return Problem(422, f"reference to a missing {constraint}")
    if state in INVALID_STATES:
        return Problem(422, f"invalid input: {e}")
    if state == "42501":
        return Problem(403, "permission denied")
    if state in TRANSIENT_STATES:
        return Problem(503, "the server could not complete the request")
    return Problem(500, "the server could not complete the request")


# --- the app ------------------------------------------------------------------------------------------


@asynccontextmanager
async def lifespan(app: FastAPI):
    secret = os.environ["ORBAS_JWT_SECRET"]
    if len(secret.encode()) < MIN_KEY_BYTES:
        raise RuntimeError("ORBAS_JWT_SECRET must be at least 32 bytes")
    size = int(os.environ.get("ORBAS_PEER_POOL_SIZE", "16"))
    app.state.jwt_secret = secret
    app.state.pool = await asyncpg.create_pool(
        os.environ["ORBAS_PEER_DATABASE_URL"],
        min_size=min(4, size),
        max_size=size,
        server_settings={"application_name": "orbas-bench-peer"},
    )
    try:
        yield
    finally:
        await app.state.pool.close()


app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)


@app.exception_handler(Problem)
async def on_problem(_: Request, p: Problem) -> Response:
    return problem_response(p)


@app.exception_handler(asyncpg.PostgresError)
async def on_postgres_error(_: Request, e: asyncpg.PostgresError) -> Response:
    return problem_response(problem_from_postgres(e))


@app.exception_handler(RequestValidationError)
async def on_invalid_request(_: Request, e: RequestValidationError) -> Response:
    """Bad query string or malformed JSON: 400; well-formed JSON of the wrong shape: 422 (as Orbas)."""
    errors = e.errors()
    malformed = next((err for err in errors if err["type"] == "json_invalid"), None)
    if malformed is not None:
        reason = malformed.get("ctx", {}).get("error", malformed["msg"])
        return problem_response(Problem(400, f"Failed to parse the request body as JSON: {reason}"))
    fields = [{"field": "/".join(str(x) for x in err["loc"][1:]), "message": err["msg"]} for err in errors]
    if all(err["loc"][0] == "query" for err in errors):
        return problem_response(Problem(400, "; ".join(f"{f['field']}: {f['message']}" for f in fields)))
    return problem_response(Problem(422, "the request body does not match the schema", fields))


@app.exception_handler(StarletteHTTPException)
async def on_http_error(request: Request, e: StarletteHTTPException) -> Response:
    detail = f"no resource at {request.url.path}" if e.status_code == 404 else str(e.detail)
    return problem_response(Problem(e.status_code, detail))


class RequestId:
    """Pure ASGI middleware: `x-request-id` from the request (printable, 1..128 chars) or a new UUIDv7,
    kept in the request state for the audit row and echoed on the response, as Orbas' middleware does."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.inner(scope, receive, send)
        rid = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        if not (0 < len(rid) <= 128 and all(0x21 <= c <= 0x7E for c in rid)):
            rid = str(uuid7()).encode()
        scope.setdefault("state", {})["request_id"] = rid.decode()

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid)]
            await send(message)

        await self.inner(scope, receive, send_with_id)


app.add_middleware(RequestId)


# --- authentication and authorisation -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: str
    user: str
    role: str
    reports: frozenset[str]


def verify(token: str, secret: str) -> dict:
    """The token's claims, or 401. HS256 only; `exp` and `iat` checked with the leeway; every claim typed."""
    if len(token) > MAX_TOKEN_LEN:
        raise unauthorized("invalid or expired access token")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            leeway=LEEWAY_SECS,
            options={"require": ["sub", "tid", "role", "sid", "iat", "exp", "jti"]},
        )
        for name in ("sub", "tid", "sid", "jti"):
            claims[name] = str(uuid.UUID(claims[name]))
    except (jwt.PyJWTError, ValueError, TypeError, AttributeError):
        raise unauthorized("invalid or expired access token") from None
    if claims["role"] not in ROLES:
        raise unauthorized("invalid or expired access token")
    return claims


async def authenticate(request: Request) -> Principal:
    """Bearer token, then — in its own tenant-scoped transaction — session live? and the caller's team."""
    header = request.headers.get("authorization", "")
    if not header.startswith("Bearer "):
        raise unauthorized("send an access token: Authorization: Bearer <token>")
    claims = verify(header[len("Bearer ") :].strip(), request.app.state.jwt_secret)
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        await conn.execute(SET_TENANT, claims["tid"])
        live = bool(await conn.fetchval(SESSION_LIVE, claims["sid"]))
        reports = frozenset(str(r[0]) for r in await conn.fetch(TEAM, claims["sub"])) if live else frozenset()
    if not live:
        raise unauthorized("the session has ended; log in again")
    if claims["sub"] in reports:
        raise Problem(422, "invalid input: the management chain has a cycle")
    return Principal(claims["tid"], claims["sub"], claims["role"], reports)


def may(p: Principal, matrix: dict[str, str], owner: str | None) -> bool:
    """Orbas' `Principal::may`: `all` reaches every record, `team` the caller's and their reports',
    `own` the caller's; a record without an owner only with `all`."""
    scope = matrix.get(p.role)
    if scope is None:
        return False
    if scope == "all":
        return True
    if owner is None:
        return False
    return owner == p.user or (scope == "team" and owner in p.reports)


Auth = Annotated[Principal, Depends(authenticate)]


# --- GET /v1/opportunities ----------------------------------------------------------------------------

LIST_PARAMS = frozenset({"owner_id", "account_id", "stage_id", "status", "limit", "after"})


@app.get("/v1/opportunities")
async def list_opportunities(
    request: Request,
    p: Auth,
    owner_id: uuid.UUID | None = None,
    account_id: uuid.UUID | None = None,
    stage_id: uuid.UUID | None = None,
    status: Literal["open", "won", "lost"] | None = None,
    limit: Annotated[int | None, Query(ge=0, le=2**32 - 1)] = None,
    after: uuid.UUID | None = None,
) -> Response:
    unknown = request.query_params.keys() - LIST_PARAMS
    if unknown:
        raise Problem(400, f"unknown query parameter(s): {', '.join(sorted(unknown))}")
    if not may(p, OPPORTUNITIES_READ, None):
        raise Problem(403, "your role may not read opportunities")
    conditions: list[str] = []
    args: list[object] = []
    for column, value in (("id >", after), ("owner_id =", owner_id), ("account_id =", account_id),
                          ("stage_id =", stage_id), ("status =", status)):
        if value is not None:
            args.append(value)
            conditions.append(f"{column} ${len(args)}")
    page = min(max(PAGE_DEFAULT if limit is None else limit, 1), PAGE_MAX)
    args.append(page + 1)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = f"SELECT {OPPORTUNITY_COLUMNS} FROM opportunities{where} ORDER BY id LIMIT ${len(args)}"
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        await conn.execute(SET_TENANT, p.tenant)
        rows = await conn.fetch(sql, *args)
    items = [dict(r) for r in rows[:page]]
    next_cursor = items[-1]["id"] if len(rows) > page else None
    return Response(dumps({"items": items, "next_cursor": next_cursor}), media_type="application/json")


# --- POST /v1/tasks -----------------------------------------------------------------------------------


class NewTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["call", "email", "meeting", "task"]
    subject: Annotated[str, Field(min_length=1, max_length=500)]
    description: str | None = None
    priority: Literal["low", "normal", "high", "urgent"] | None = None
    owner_id: uuid.UUID | None = None
    account_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    lead_id: uuid.UUID | None = None
    opportunity_id: uuid.UUID | None = None
    ticket_id: uuid.UUID | None = None
    due_at: AwareDatetime | None = None
    sla_due_at: AwareDatetime | None = None


def created_changes(record: dict) -> dict:
    """Orbas' audit diff of a create: every field but the maintained timestamps, nulls left out."""
    skip = ("created_at", "updated_at")
    return {k: {"before": None, "after": v} for k, v in record.items() if v is not None and k not in skip}


@app.post("/v1/tasks", status_code=201)
async def create_task(new: NewTask, request: Request, p: Auth) -> Response:
    owner = str(new.owner_id) if new.owner_id else p.user
    if not may(p, TASKS_CREATE, owner):
        raise Problem(403, "your role may not create tasks")
    task_id = uuid7()
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        await conn.execute(SET_TENANT, p.tenant)
        row = await conn.fetchrow(
            INSERT_TASK, p.tenant, task_id, new.kind, new.subject, new.description, new.priority, owner,
            new.account_id, new.contact_id, new.lead_id, new.opportunity_id, new.ticket_id, new.due_at,
            new.sla_due_at,
        )  # fmt: skip
        record = dict(row)
        changes = dumps(created_changes(record)).decode()
        ip = request.client.host if request.client else None
        await conn.execute(
            INSERT_AUDIT, p.tenant, uuid7(), p.user, task_id, changes, request.state.request_id, ip
        )
    body = dumps(record)
    headers = {"Location": f"/v1/tasks/{task_id}", "ETag": etag(body)}
    return Response(body, 201, headers, media_type="application/json")
