# SAM build and validation. Included from the top-level Makefile; run from the repository root.
# aws-sam-cli pins its own boto3/botocore, so it lives in its own venv, apart from .venv.

SAM_VENV ?= .venv-sam
SAM ?= $(SAM_VENV)/bin/sam
CFN_LINT ?= .venv/bin/cfn-lint
SAM_REGION ?= us-east-1
# sam validate builds a boto3 session even offline; dummy credentials are enough because
# validation and linting never call AWS. Real credentials in the environment win.
SAM_ENV = SAM_CLI_TELEMETRY=0 AWS_REGION=$${AWS_REGION:-$(SAM_REGION)} \
	AWS_ACCESS_KEY_ID=$${AWS_ACCESS_KEY_ID:-testing} AWS_SECRET_ACCESS_KEY=$${AWS_SECRET_ACCESS_KEY:-testing}

.PHONY: build validate lint-template sam-clean

$(SAM):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli

# No container: lambda-builders fetches manylinux aarch64 wheels for the arm64 layer.
build: $(SAM)
	$(SAM_ENV) $(SAM) build --template template.yaml --region $(SAM_REGION)

validate: $(SAM)
	$(SAM_ENV) $(SAM) validate --template template.yaml --region $(SAM_REGION) --lint

# cfn-lint, then checkov (mk/checkov.mk): both must pass for `make test`.
lint-template: $(STAMP) checkov
	$(CFN_LINT) template.yaml

sam-clean:
	rm -rf .aws-sam
