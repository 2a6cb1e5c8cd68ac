"""Submits one message with Python's smtplib and prints every reply as "<code> <text>".

usage: submit.py PORT MODE CA [CERT KEY] < MESSAGE
MODE is "starttls" (port 587 style) or "implicit" (465 style). Sender and recipients come from
the environment: MW_FROM and MW_TO (comma separated); MW_AUTH="user:password", when set, logs in
with SMTP AUTH after EHLO. Any SMTP error is printed, not raised, so the caller can assert the
exact code.
"""

import os
import smtplib
import ssl
import sys


def main():
    port, mode, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    context = ssl.create_default_context(cafile=ca)
    if len(sys.argv) > 5:
        context.load_cert_chain(sys.argv[4], sys.argv[5])
    message = sys.stdin.buffer.read()
    sender, recipients = os.environ["MW_FROM"], os.environ["MW_TO"].split(",")
    try:
        if mode == "implicit":
            client = smtplib.SMTP_SSL("localhost", port, context=context, timeout=30)
        else:
            client = smtplib.SMTP("localhost", port, timeout=30)
            client.ehlo("submit.test")
            code, text = client.starttls(context=context)
            print(code, text.decode())
        client.ehlo("submit.test")
        if os.environ.get("MW_AUTH"):
            user, password = os.environ["MW_AUTH"].split(":", 1)
            code, text = client.login(user, password)
            print(code, text.decode())
        code, text = client.mail(sender)
        print(code, text.decode())
        if code != 250:
            return
        for recipient in recipients:
            code, text = client.rcpt(recipient)
            print(code, text.decode())
        code, text = client.data(message)
        print(code, text.decode())
        client.quit()
    except smtplib.SMTPResponseException as error:
        print(error.smtp_code, error.smtp_error.decode())
    except (ssl.SSLError, ConnectionError, smtplib.SMTPServerDisconnected) as error:
        print("tls-error", type(error).__name__, error)


if __name__ == "__main__":
    main()
