"""Two-factor sign-in for accounts that sign in with a password: TOTP enrolment, the code after the password,
single-use recovery codes, and OTP_REQUIRED_FOR_STAFF (off in the test settings, on by default in production)."""

import re
import time

import pytest
import time_machine
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from incidents.audit.models import AuditRecord
from tests.factories import ManagerFactory, ResponderFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture
def clock():
    """Frozen at the real current time; tests step it forward to the next 30-second TOTP window."""
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        yield traveller


@pytest.fixture
def required(settings):
    settings.OTP_REQUIRED_FOR_STAFF = True


def code_for(device) -> str:
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    return f"{totp.token():06d}"


def password_login(client, user, next_url="/"):
    return client.post("/accounts/login/", {"username": user.username, "password": PASSWORD, "next": next_url})


def enrol(client) -> list[str]:
    """Open the set-up page and confirm with the app's current code; the recovery codes shown."""
    assert client.get("/accounts/two-factor/").status_code == 200
    device = TOTPDevice.objects.get(confirmed=False)
    response = client.post("/accounts/two-factor/", {"code": code_for(device), "next": "/"})
    assert response.status_code == 200
    return re.findall(r"<li><code>(\w+)</code></li>", response.content.decode())


def test_staff_password_sign_in_must_enrol_before_anything_else(client, required):
    manager = ManagerFactory()

    response = password_login(client, manager, next_url="/incidents/")

    assert response["Location"] == "/incidents/"
    assert client.get("/incidents/")["Location"] == "/accounts/two-factor/?next=%2Fincidents%2F"
    assert client.get("/admin/")["Location"] == "/accounts/two-factor/?next=%2Fadmin%2F"
    api = client.get("/api/v1/incidents/")
    assert api.status_code == 403 and api.json()["field"] == "otp"
    htmx = client.get("/incidents/", headers={"HX-Request": "true"})
    assert htmx.status_code == 403 and htmx["HX-Redirect"].startswith("/accounts/two-factor/")
    page = client.get("/accounts/two-factor/?next=/incidents/").content.decode()
    assert "otpauth://totp/Incident%20Portal%3A" in page
    assert "<svg" in page  # the QR code, inline (no image request, nothing from the network)


def test_enrolment_shows_recovery_codes_once_and_opens_the_portal(client, required, clock):
    manager = ManagerFactory()
    password_login(client, manager)
    client.get("/accounts/two-factor/")
    device = TOTPDevice.objects.get(user=manager, confirmed=False)
    secret_page = client.get("/accounts/two-factor/").content.decode()
    assert TOTPDevice.objects.filter(user=manager).count() == 1  # reloading keeps the secret already scanned
    assert re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', secret_page)

    wrong = client.post("/accounts/two-factor/", {"code": "000000" if code_for(device) != "000000" else "111111"})
    assert "That code is not right" in wrong.content.decode()
    throttled = client.post("/accounts/two-factor/", {"code": code_for(device)})
    assert "Too many wrong codes" in throttled.content.decode()
    clock.shift(2)  # django-otp's back-off: 1 s after one failure

    codes = enrol(client)

    assert len(codes) == 10 and len(set(codes)) == 10
    assert client.get("/incidents/").status_code == 200
    assert client.get("/admin/").status_code == 200
    device.refresh_from_db()
    assert device.confirmed
    status = client.get("/accounts/two-factor/").content.decode()
    assert "Two-factor sign-in is on" in status and not any(code in status for code in codes)
    assert AuditRecord.objects.filter(object_type="otp_totp.totpdevice", object_id=str(device.pk)).exists()


def test_password_then_code_and_a_code_is_not_accepted_twice(client, required, clock):
    manager = ManagerFactory()
    password_login(client, manager)
    enrol(client)
    device = TOTPDevice.objects.get(user=manager, confirmed=True)
    used_at_enrolment = code_for(device)
    client.post("/accounts/logout/")

    response = password_login(client, manager, next_url="/incidents/")
    assert client.get(response["Location"])["Location"] == "/accounts/two-factor/verify/?next=%2Fincidents%2F"
    replay = client.post("/accounts/two-factor/verify/", {"code": used_at_enrolment, "next": "/incidents/"})
    assert "That code is not right" in replay.content.decode()

    clock.shift(30)  # the app's next code
    response = client.post("/accounts/two-factor/verify/", {"code": code_for(device), "next": "/incidents/"})

    assert response["Location"] == "/incidents/"
    assert client.get("/incidents/").status_code == 200


def test_a_recovery_code_signs_in_once(client, required, clock):
    manager = ManagerFactory()
    password_login(client, manager)
    codes = enrol(client)
    client.post("/accounts/logout/")

    password_login(client, manager)
    response = client.post("/accounts/two-factor/verify/", {"code": codes[3].upper(), "next": "/"}, follow=True)
    assert response.status_code == 200
    assert "You signed in with a recovery code; 9 left" in response.content.decode()
    client.post("/accounts/logout/")

    password_login(client, manager)
    again = client.post("/accounts/two-factor/verify/", {"code": codes[3], "next": "/"})
    assert "was used already" in again.content.decode()
    assert client.get("/incidents/")["Location"].startswith("/accounts/two-factor/verify/")


def test_new_recovery_codes_replace_the_old_ones(client, required, clock):
    manager = ManagerFactory()
    password_login(client, manager)
    old = enrol(client)

    response = client.post("/accounts/two-factor/recovery-codes/")
    new = re.findall(r"<li><code>(\w+)</code></li>", response.content.decode())
    assert len(new) == 10 and not set(new) & set(old)
    client.post("/accounts/logout/")

    password_login(client, manager)
    assert "was used already" in client.post("/accounts/two-factor/verify/", {"code": old[0]}).content.decode()
    clock.shift(2)  # past the back-off after a wrong code
    assert client.post("/accounts/two-factor/verify/", {"code": new[0], "next": "/"})["Location"] == "/"


def test_wrong_codes_are_throttled(client, required, clock):
    manager = ManagerFactory()
    password_login(client, manager)
    enrol(client)
    device = TOTPDevice.objects.get(user=manager, confirmed=True)
    client.post("/accounts/logout/")
    password_login(client, manager)
    clock.shift(30)
    right = code_for(device)
    wrong = "000000" if right != "000000" else "111111"

    client.post("/accounts/two-factor/verify/", {"code": wrong})
    response = client.post("/accounts/two-factor/verify/", {"code": right})

    assert "Too many wrong codes" in response.content.decode()
    clock.shift(2)  # django-otp's back-off: 1 s after one failure
    assert client.post("/accounts/two-factor/verify/", {"code": right, "next": "/"})["Location"] == "/"


def test_a_session_that_owes_its_code_cannot_enrol_another_device(client, required, clock):
    manager = ManagerFactory()
    password_login(client, manager)
    enrol(client)
    client.post("/accounts/logout/")
    password_login(client, manager)

    response = client.get("/accounts/two-factor/")

    assert response["Location"].startswith("/accounts/two-factor/verify/")
    assert client.post("/accounts/two-factor/recovery-codes/")["Location"].startswith("/accounts/two-factor/verify/")
    assert TOTPDevice.objects.filter(user=manager).count() == 1


def test_the_admin_login_is_protected_too(client, required, clock):
    manager = ManagerFactory()
    password_login(client, manager)
    enrol(client)
    client.post("/accounts/logout/")

    response = client.post(
        "/admin/login/?next=/admin/", {"username": manager.username, "password": PASSWORD, "next": "/admin/"}
    )

    assert response["Location"] == "/admin/"
    assert client.get("/admin/")["Location"] == "/accounts/two-factor/verify/?next=%2Fadmin%2F"


def test_a_staff_session_from_before_the_setting_must_verify(client, settings):
    settings.OTP_REQUIRED_FOR_STAFF = False
    manager = ManagerFactory()
    client.force_login(manager)
    assert client.get("/incidents/").status_code == 200

    settings.OTP_REQUIRED_FOR_STAFF = True

    assert client.get("/incidents/")["Location"].startswith("/accounts/two-factor/")


def test_responders_are_not_required_to_enrol(client, required):
    responder = ResponderFactory()
    password_login(client, responder)
    assert client.get("/incidents/").status_code == 200


def test_with_the_setting_off_staff_sign_in_with_a_password_alone(client, settings):
    settings.OTP_REQUIRED_FOR_STAFF = False
    password_login(client, ManagerFactory())
    assert client.get("/admin/").status_code == 200


def test_anyone_who_enrolled_gives_their_code_even_with_the_setting_off(client, settings, clock):
    settings.OTP_REQUIRED_FOR_STAFF = False
    responder = ResponderFactory()
    password_login(client, responder)
    enrol(client)
    client.post("/accounts/logout/")

    password_login(client, responder)

    assert client.get("/incidents/")["Location"].startswith("/accounts/two-factor/verify/")
