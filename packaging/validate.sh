#!/usr/bin/env bash
# Validate the desktop integration files: the .desktop entry (desktop-file-validate), the AppStream
# metainfo (appstreamcli, offline), that every file uses the one application id in app_id.txt and
# that the entry opens every file type the shared-mime-info package declares.
# Exits non-zero on the first failure. Needs Debian/Ubuntu packages desktop-file-utils and appstream.
#
#   packaging/validate.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
app_id="$(tr -d '[:space:]' < "$here/app_id.txt")"
desktop="$here/$app_id.desktop"
metainfo="$here/$app_id.metainfo.xml"
mime_package="$here/$app_id.mime.xml"
svg_icon="$here/icons/$app_id.svg"
png_icon="$here/icons/$app_id.png"

for tool in desktop-file-validate appstreamcli; do
    if ! command -v "$tool" >/dev/null; then
        echo "validate.sh: $tool is missing (apt-get install desktop-file-utils appstream)" >&2
        exit 2
    fi
done
for file in "$desktop" "$metainfo" "$mime_package" "$svg_icon" "$png_icon"; do
    [[ -f "$file" ]] || { echo "validate.sh: $file is missing" >&2; exit 1; }
done

# The id must be the same everywhere, or the desktop shell, the software centre and the running
# window (QGuiApplication.setDesktopFileName) will not recognise each other.
grep -qx "Icon=$app_id" "$desktop" \
    || { echo "validate.sh: $desktop does not say Icon=$app_id" >&2; exit 1; }
grep -q "<id>$app_id</id>" "$metainfo" \
    || { echo "validate.sh: $metainfo does not say <id>$app_id</id>" >&2; exit 1; }
grep -q "<launchable type=\"desktop-id\">$app_id.desktop</launchable>" "$metainfo" \
    || { echo "validate.sh: $metainfo does not launch $app_id.desktop" >&2; exit 1; }
mime_types="$(grep -o '<mime-type type="[^"]*"' "$mime_package" | cut -d'"' -f2)"
[[ -n "$mime_types" ]] || { echo "validate.sh: $mime_package declares no <mime-type>" >&2; exit 1; }
for mime_type in $mime_types; do
    grep -q "^MimeType=\(.*;\)\?$mime_type;" "$desktop" \
        || { echo "validate.sh: $desktop does not list $mime_type in MimeType=" >&2; exit 1; }
done

echo "== desktop-file-validate $desktop"
desktop-file-validate "$desktop"
echo "== appstreamcli validate --no-net $metainfo"
appstreamcli validate --no-net "$metainfo"
echo "validate.sh: all packaging files are valid"
