#!/bin/sh
# azd postdeploy hook: register the relay's function key on the deployed app.
#
# The action groups call the relay with code=$RELAY_FUNCTION_KEY (main.bicep puts it in their
# webhook address); the Functions host accepts that key once it is one of the app's host keys.
# azd runs this with its environment's values (RELAY_FUNCTION_KEY, AZURE_RESOURCE_GROUP) and the
# deployment's outputs (AZURE_FUNCTION_NAME). By hand:
#   az functionapp keys set -g <rg> -n <app> --key-type functionKeys \
#     --key-name alert-relay --key-value "$RELAY_FUNCTION_KEY"
set -eu

if [ -z "${RELAY_FUNCTION_KEY:-}" ]; then
  echo "postdeploy: RELAY_FUNCTION_KEY is not set; the action groups call the relay without a key." >&2
  exit 0
fi
if ! command -v az >/dev/null 2>&1; then
  echo "postdeploy: the Azure CLI (az) is needed to register the alert-relay key; run:" >&2
  echo "  az functionapp keys set -g <rg> -n <app> --key-type functionKeys --key-name alert-relay --key-value <RELAY_FUNCTION_KEY>" >&2
  exit 1
fi

az functionapp keys set \
  --resource-group "${AZURE_RESOURCE_GROUP:?AZURE_RESOURCE_GROUP is not set}" \
  --name "${AZURE_FUNCTION_NAME:?AZURE_FUNCTION_NAME is not set}" \
  --key-type functionKeys \
  --key-name alert-relay \
  --key-value "$RELAY_FUNCTION_KEY" \
  --output none
echo "postdeploy: host key alert-relay registered on $AZURE_FUNCTION_NAME."
