# checkov, the template's security scan. Included from the top-level Makefile; run from the
# repository root. checkov pins dozens of packages (boto3 among them), so it lives in its own venv,
# apart from .venv (moto, boto3) and .venv-sam; the stamp names the version, so a new pin reinstalls.

CHECKOV_VERSION ?= 3.3.30
CHECKOV_VENV ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)
CHECKOV ?= $(CHECKOV_VENV)/bin/checkov

.PHONY: checkov

$(CHECKOV_STAMP):
	rm -rf $(CHECKOV_VENV)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	touch $(CHECKOV_STAMP)

# Every check must pass or be skipped in template.yaml with its reason (Metadata: checkov: skip:
# id and comment; tests/integration/test_template_security.py requires the comment).
# --skip-download: offline, no Prisma Cloud look-ups; the checks themselves ship in the package.
checkov: $(CHECKOV_STAMP)
	$(CHECKOV) --file template.yaml --framework cloudformation --compact --quiet --skip-download
