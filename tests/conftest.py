import pytest


@pytest.fixture
def responder(db):
    from tests.factories import ResponderFactory

    return ResponderFactory()


@pytest.fixture
def manager(db):
    from tests.factories import ManagerFactory

    return ManagerFactory()


@pytest.fixture
def viewer(db):
    from tests.factories import ViewerFactory

    return ViewerFactory()
