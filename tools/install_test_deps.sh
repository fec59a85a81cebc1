#!/usr/bin/env bash
# System packages the test suite needs, installed only where missing (idempotent, safe to re-run):
#   fonts-noto-color-emoji, openmoji@17.0.0, @discordapp/twemoji@16.0.1 and the Iconify JSON packages of Fluent
#     Emoji (flat, colour) and EmojiOne: the emoji artwork the dataset
#     builder renders (tests/test_emoji_data.py builds a small slice of it);
#   chromium: the browser of the headless UI test (tests/test_app_browser.py, driven by Playwright).
# Python packages come from requirements-dev.txt. Needs apt-get (Debian/Ubuntu) and npm; as root or with sudo.
set -euo pipefail

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_packages=()
[ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || apt_packages+=(fonts-noto-color-emoji)
command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
if [ ${#apt_packages[@]} -gt 0 ]; then
  echo "install_test_deps: apt-get install ${apt_packages[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

npm_root=$(npm root -g)
npm_packages=()
for spec in openmoji@17.0.0 @discordapp/twemoji@16.0.1 @iconify-json/fluent-emoji-flat@1.2.6 @iconify-json/fluent-emoji@1.2.7 @iconify-json/emojione@1.2.3; do
  name=${spec%@*}; version=${spec##*@}
  installed=$(node -p "try { require('$npm_root/$name/package.json').version } catch (e) { '' }")
  [ "$installed" = "$version" ] || npm_packages+=("$spec")
done
if [ ${#npm_packages[@]} -gt 0 ]; then
  echo "install_test_deps: npm install -g ${npm_packages[*]}"
  sudo_if_needed npm install -g --no-audit --no-fund "${npm_packages[@]}" >/dev/null
fi
echo "install_test_deps: system test dependencies present"
