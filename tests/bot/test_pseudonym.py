from bot.pseudonym import pseudonym


def test_the_same_person_always_gets_the_same_pseudonym() -> None:
    assert pseudonym(b"secret-one", 123456789) == pseudonym(b"secret-one", "123456789")


def test_the_pseudonym_hides_the_id_and_depends_on_the_key() -> None:
    value = pseudonym(b"secret-one", 123456789)
    assert "123456789" not in value
    assert len(value) == 64
    assert value != pseudonym(b"secret-two", 123456789)
