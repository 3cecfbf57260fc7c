"""The e-mails of sign-up and password reset, each with a plain-text and an HTML part.

The plain-text part holds the link the protocol names: ``<public URL>/family?confirm=<code>``
for a sign-up, ``<public URL>/family?reset=<code>`` for a reset. A sign-up with an e-mail that
is already registered sends its owner :meth:`Letters.someone_tried` instead (no account is made,
and the one who tried learns nothing).
"""

from __future__ import annotations

import html
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import quote

PRODUCT = "Visitation"
CONFIRM_HOURS = 24
RESET_HOURS = 1


class Letters:
    """Builds the messages sent from ``mail_from`` with links to ``public_url``."""

    def __init__(self, public_url: str, mail_from: str) -> None:
        self.public_url = public_url.rstrip("/")
        self.mail_from = mail_from

    def confirm_link(self, code: str) -> str:
        return f"{self.public_url}/family?confirm={quote(code, safe='')}"

    def reset_link(self, code: str) -> str:
        return f"{self.public_url}/family?reset={quote(code, safe='')}"

    def confirm(self, to: str, code: str) -> EmailMessage:
        link = self.confirm_link(code)
        return self._letter(
            to,
            f"Confirm your e-mail for {PRODUCT}",
            [
                f"Welcome to {PRODUCT}. To confirm this e-mail address, open this link:",
                link,
                f"The link works once, for {CONFIRM_HOURS} hours.",
                "If you did not sign up, ignore this e-mail: nothing happens without the link.",
            ],
            link,
            "Confirm my e-mail",
        )

    def reset(self, to: str, code: str) -> EmailMessage:
        link = self.reset_link(code)
        return self._letter(
            to,
            f"Reset your {PRODUCT} password",
            [
                "Someone asked to reset the password of the account with this e-mail.",
                "To choose a new password, open this link:",
                link,
                f"The link works once, for {RESET_HOURS} hour. Every device signed in now will "
                "be signed out.",
                "If it was not you, ignore this e-mail: your password stays as it is.",
            ],
            link,
            "Choose a new password",
        )

    def someone_tried(self, to: str) -> EmailMessage:
        link = f"{self.public_url}/family"
        return self._letter(
            to,
            f"Someone tried to sign up to {PRODUCT} with your e-mail",
            [
                f"Someone tried to create a {PRODUCT} account with this e-mail address, which "
                "already has one. No new account was made.",
                "If it was you, sign in (or reset your password) here:",
                link,
                "If it was not you, you need not do anything.",
            ],
            link,
            "Sign in",
        )

    def _letter(
        self, to: str, subject: str, paragraphs: list[str], link: str, action: str
    ) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.mail_from
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain="visitation.invalid")
        plain = "\n\n".join(paragraphs) + "\n"
        # 7bit where it can be: the link stays whole in the raw message (no "=3D", no "=\n").
        seven_bit = plain.isascii() and max(len(line) for line in plain.splitlines()) < 990
        message.set_content(plain, cte="7bit" if seven_bit else None)
        body = "".join(
            f'<p><a href="{html.escape(link)}">{html.escape(action)}</a></p>'
            if p == link
            else f"<p>{html.escape(p)}</p>"
            for p in paragraphs
        )
        message.add_alternative(
            f'<!doctype html><html><body style="font-family:sans-serif">{body}</body></html>\n',
            subtype="html",
        )
        return message
