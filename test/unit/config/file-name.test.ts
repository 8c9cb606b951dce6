import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configFormatFromPath, isVassalFileName } from '@emperor/config';

test('vassal file names the emperor accepts', () => {
  assert.equal(isVassalFileName('shop.ini'), 'ini');
  assert.equal(isVassalFileName('blog.v2.xml'), 'xml');
  assert.equal(isVassalFileName('api.json'), 'json');
  assert.equal(isVassalFileName(`${'a'.repeat(250)}.ini`), 'ini');
});

test('names the emperor ignores', () => {
  for (const name of ['', '.ini', '.shop.ini', '.#shop.ini', '..data', 'shop.ini~', 'shop.ini.swp', 'shop.INI', 'shop.yaml', 'shop.yml',
    'shop', 'dir/shop.ini', 'bad\nname.ini', `${'a'.repeat(251)}.ini`, `${'é'.repeat(126)}.ini`]) {
    assert.equal(isVassalFileName(name), undefined, JSON.stringify(name));
  }
});

test('format from a path', () => {
  assert.equal(configFormatFromPath('/etc/emperor.d/shop.ini'), 'ini');
  assert.equal(configFormatFromPath('relative/shop.xml'), 'xml');
  assert.equal(configFormatFromPath('shop.json'), 'json');
});
