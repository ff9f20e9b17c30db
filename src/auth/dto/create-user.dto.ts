import { IsIn, IsString, Matches, MaxLength, MinLength } from 'class-validator';
import { ROLES, type Role } from '../user.entity';

export class CreateUserDto {
  /** 1-64 letters, digits, `.`, `_`, `@` or `-`. @example operator1 */
  @IsString()
  @Matches(/^[A-Za-z0-9._@-]{1,64}$/, { message: 'username must be 1-64 letters, digits, . _ @ or -' })
  username: string;

  /** At least 12 characters. @example a-long-passphrase */
  @IsString()
  @MinLength(12, { message: 'password must be at least 12 characters' })
  @MaxLength(1024)
  password: string;

  /** @example operator */
  @IsIn(ROLES, { message: `role must be one of ${ROLES.join(', ')}` })
  role: Role;
}
