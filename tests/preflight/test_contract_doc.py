"""docs/inventory.md lists every rule of the contract with an example of its message."""

import contract_doc
from ansible_collections.llmops.multillm.plugins.module_utils import _contract, _gateway


def test_every_rule_id_is_in_the_document():
    text = contract_doc.DOC.read_text()
    for rule_id in _contract.RULE_IDS + _gateway.RULE_IDS:
        assert "| `%s` |" % rule_id in text, rule_id


def test_the_examples_are_what_the_contract_says_now():
    # Regenerate with: python tests/preflight/contract_doc.py
    assert contract_doc.current() == contract_doc.section()
