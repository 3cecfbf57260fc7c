"""Sign-up, sign-in, sign-out and password reset (PROTOCOL v1.2 "Accounts and sign-in").

What an attacker must not learn, and how:

- whether an account exists: a sign-up with a registered e-mail answers like a new one (its
  owner is told by mail instead), a reset request always answers 202, and a sign-in with an
  unknown e-mail or staff id costs one Argon2 verification too (against a dummy hash), with the
  same Redis round trips and the same 401 ``invalid_credentials`` body;
- a password by guessing: after :data:`FAILURES` failures within :data:`LOCK_WINDOW_S` an
  account (known or not) answers 429 to every attempt, from any address, until the oldest
  failure leaves the window; the addresses' own rate limits apply on top;
- a second factor by replay: a TOTP code signs in once.

A reset confirmed ends every token of the family issued before it, and its other reset links.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Final

from accounts.codes import OneTimeCodes
from accounts.credentials import Credentials
from accounts.lockout import Lockout
from accounts.mail import CONFIRM_HOURS, RESET_HOURS, Letters
from accounts.mail_outbox import MailOutbox
from accounts.passwords import PasswordRefused, check_password
from accounts.sealed import SealBroken
from accounts.totp import matching_step
from core.directory import Directory
from core.domain import Family
from core.http_api import ApiError
from core.http_guard import rate_limited
from core.revocation import Revocations
from core.tokens import DEFAULT_TTL_S, Claims, Tokens

log = logging.getLogger(__name__)

FAILURES: Final = 5
LOCK_WINDOW_S: Final = 15 * 60
CONFIRM_TTL_S: Final = CONFIRM_HOURS * 3600
RESET_TTL_S: Final = RESET_HOURS * 3600
FAMILY_REFUSED: Final = "wrong e-mail or password"
STAFF_REFUSED: Final = "wrong staff id, password or code"


def new_family_id() -> str:
    return "F" + secrets.token_hex(8)


@dataclass(frozen=True)
class SignedIn:
    token: str
    claims: Claims

    def body(self) -> dict[str, object]:
        return {
            "token": self.token,
            "role": self.claims.role,
            "subject": self.claims.subject,
            "expires_at": self.claims.expires_at,
        }


def invalid_credentials(message: str) -> ApiError:
    return ApiError(401, "invalid_credentials", message)


def code_expired() -> ApiError:
    return ApiError(410, "code_expired", "this code has expired or was used; ask for a new one")


def refused(exc: PasswordRefused) -> ApiError:
    return ApiError(422, "invalid_request", f"password: {exc}")


class SignIn:
    def __init__(
        self,
        *,
        credentials: Credentials,
        directory: Directory,
        tokens: Tokens,
        revocations: Revocations,
        lockout: Lockout,
        confirm_codes: OneTimeCodes,
        reset_codes: OneTimeCodes,
        letters: Letters,
        mail: MailOutbox,
        token_ttl_s: int = DEFAULT_TTL_S,
    ) -> None:
        self.credentials = credentials
        self.hasher = credentials.hasher
        self.directory = directory
        self.tokens = tokens
        self.revocations = revocations
        self.lockout = lockout
        self.confirm_codes = confirm_codes
        self.reset_codes = reset_codes
        self.letters = letters
        self.mail = mail
        self.token_ttl_s = token_ttl_s

    # -- families ------------------------------------------------------------------------------

    async def sign_up(self, email: str, password: str, name: str, phone: str | None) -> str:
        """A new family (unverified, e-mail unconfirmed, balance 0) and its confirmation mail;
        for a registered e-mail, its owner's "someone tried" mail and no account. Either way
        the family id the caller gets back looks the same."""
        try:
            check_password(password, email)
        except PasswordRefused as exc:
            raise refused(exc) from None
        password_hash = await self.hasher.hash(password)
        family = Family(id=new_family_id(), name=name, verified=False)
        if not await self.credentials.register_family(family, email, password_hash, phone):
            await self.mail.queue(self.letters.someone_tried(email))
            return new_family_id()
        code = await self.confirm_codes.issue(family.id, CONFIRM_TTL_S)
        await self.mail.queue(self.letters.confirm(email, code))
        log.info("family %s signed up", family.id)
        return family.id

    async def confirm(self, code: str) -> None:
        family_id = await self.confirm_codes.redeem(code)
        if family_id is None:
            raise code_expired()
        await self.credentials.confirm_email(family_id)

    async def sign_in_family(self, email: str, password: str) -> SignedIn:
        account = f"family:{email}"
        await self._not_locked(account)
        login = await self.credentials.family_login(email)
        encoded = None if login is None else login.password_hash
        if not await self.hasher.verify(encoded, password) or login is None:
            await self.lockout.failed(account)
            raise invalid_credentials(FAMILY_REFUSED)
        if not await self.directory.exists("family", login.family_id):
            await self.lockout.failed(account)
            raise invalid_credentials(FAMILY_REFUSED)
        await self.lockout.clear(account)
        if encoded is not None and self.hasher.needs_rehash(encoded):
            new_hash = await self.hasher.hash(password)
            await self.credentials.set_family_password_hash(login.family_id, new_hash)
        return self._issue("family", login.family_id)

    async def request_reset(self, email: str) -> None:
        family_id = await self.credentials.family_of(email)
        if family_id is None:
            return
        code = await self.reset_codes.issue(family_id, RESET_TTL_S)
        await self.mail.queue(self.letters.reset(email, code))

    async def reset(self, code: str, password: str) -> None:
        """A new password for the code's family; every older token of it is revoked."""
        family_id = await self.reset_codes.peek(code)
        email = None if family_id is None else await self.credentials.email_of(family_id)
        if family_id is None or email is None:
            raise code_expired()
        try:
            check_password(password, email)  # before the code is spent on a refused password
        except PasswordRefused as exc:
            raise refused(exc) from None
        password_hash = await self.hasher.hash(password)
        if await self.reset_codes.redeem(code) != family_id:
            raise code_expired()
        await self.credentials.set_family_password_hash(family_id, password_hash)
        await self.reset_codes.end_all(family_id)  # the other links of this account, too
        await self.credentials.confirm_email(family_id)  # the mail reached its owner
        await self.revocations.revoke("family", family_id)
        await self.lockout.clear(f"family:{email}")
        log.info("family %s reset its password; older tokens revoked", family_id)

    # -- staff ---------------------------------------------------------------------------------

    async def sign_in_staff(self, staff_id: str, password: str, otp: str | None) -> SignedIn:
        account = f"staff:{staff_id}"
        await self._not_locked(account)
        staff = await self.directory.staff(staff_id)
        encoded = await self.credentials.staff_password_hash(staff_id)
        if not await self.hasher.verify(encoded if staff else None, password) or staff is None:
            await self.lockout.failed(account)
            raise invalid_credentials(STAFF_REFUSED)
        try:
            secret = await self.credentials.totp_secret(staff_id)
        except SealBroken:
            log.error(
                "the TOTP seed of staff %s does not open (was VISITATION_SECRET changed?): "
                "it cannot sign in until an admin resets its second factor",
                staff_id,
            )
            raise invalid_credentials(STAFF_REFUSED) from None
        if secret is not None:
            if otp is None:
                raise ApiError(401, "otp_required", "this account needs its one-time code (otp)")
            step = matching_step(secret, otp)
            if step is None or not await self.credentials.use_totp_step(staff_id, step):
                await self.lockout.failed(account)
                raise invalid_credentials(STAFF_REFUSED)
        await self.lockout.clear(account)
        if encoded is not None and self.hasher.needs_rehash(encoded):
            await self.credentials.set_staff_password_hash(
                staff_id, await self.hasher.hash(password)
            )
        return self._issue(staff.role, staff.id)

    # -- any role ------------------------------------------------------------------------------

    async def sign_out(self, claims: Claims) -> None:
        await self.revocations.revoke_token(claims, claims.expires_at)

    async def _not_locked(self, account: str) -> None:
        retry = await self.lockout.locked(account)
        if retry is not None:
            raise rate_limited(retry, "failed sign-ins for this account")

    def _issue(self, role: str, subject: str) -> SignedIn:
        token, claims = self.tokens.mint(role, subject, self.token_ttl_s)
        return SignedIn(token, claims)
